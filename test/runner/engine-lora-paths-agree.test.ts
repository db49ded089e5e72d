// The dense LoRA path (concatenated stacks [in, S·R] / [S·R, out] and a per-row slot mask) is the gather
// path's math in another layout: the block equals plain TypeScript, and two engines, one per path, give the
// same logits for mixed batches with rows joining and leaving and after slots are rewritten and cleared
// (the dense layout's slot columns are strided, so a wrong write or clear would leak into a neighbour).
import { rmSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine, DENSE_MAX_COLUMNS, defaultLoraPath } from "../../gpu-runner/engine/engine.ts";
import type { AdapterWeights, Engine, StepRow } from "../../gpu-runner/engine/types.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import { GraphBuilder } from "../../gpu-runner/engine/onnx/graph-builder.ts";
import { denseLoraDelta } from "../../gpu-runner/engine/onnx/layers.ts";
import { seededValues } from "../../scripts/bench/synthetic-model.ts";
import { AppError } from "../../src/errors.ts";
import { argmax, relativeError } from "../helpers/naive-llama.ts";
import { prompt, TINY_ADAPTERS, writeTinyModels } from "../helpers/tiny-models.ts";

// Same math, different summation order.
const TOLERANCE = 1e-5;

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

describe("denseLoraDelta against plain TypeScript", () => {
  it("row b gets (x·A[slot_b])·B[slot_b] from the concatenated stacks; slot 0 gets zero", async () => {
    const [inF, outF, rank, slots, t] = [6, 5, 2, 3, 2];
    const rowSlots = [2, 0, 3, 1];
    const columns = slots * rank;
    const x = seededValues(rng(1), rowSlots.length * t * inF, 0, 1); // [B, T, in]
    const aCat = seededValues(rng(2), inF * columns, 0, 1); // [in, S·R]
    const bCat = seededValues(rng(3), columns * outF, 0, 1); // [S·R, out]
    const mask = new Float32Array(rowSlots.length * columns);
    for (const [b, s] of rowSlots.entries())
      if (s > 0) mask.fill(1, b * columns + (s - 1) * rank, b * columns + s * rank);
    const g = new GraphBuilder();
    const inputs = {
      x: g.input("x", "float32", [rowSlots.length, t, inF]),
      a: g.input("a", "float32", [inF, columns]),
      b: g.input("b", "float32", [columns, outF]),
      mask: g.input("mask", "float32", [rowSlots.length, 1, columns]),
    };
    g.output("y", denseLoraDelta(g, inputs.x, inputs.a, inputs.b, inputs.mask), "float32", [
      rowSlots.length,
      t,
      outF,
    ]);
    const expected: number[] = [];
    for (const [b, s] of rowSlots.entries()) {
      for (let p = 0; p < t; p++) {
        const xr = x.subarray((b * t + p) * inF, (b * t + p + 1) * inF);
        const cols = Array.from({ length: rank }, (_, j) => (s - 1) * rank + j);
        const xa = cols.map((c) => xr.reduce((acc, v, i) => acc + v * (aCat[i * columns + c] as number), 0));
        for (let o = 0; o < outF; o++)
          expected.push(
            s === 0
              ? 0
              : cols.reduce((acc, c, j) => acc + (xa[j] as number) * (bCat[c * outF + o] as number), 0),
          );
      }
    }
    const session = await ort.InferenceSession.create(g.toBytes());
    const out = await session.run({
      x: new ort.Tensor("float32", x, [rowSlots.length, t, inF]),
      a: new ort.Tensor("float32", aCat, [inF, columns]),
      b: new ort.Tensor("float32", bCat, [columns, outF]),
      mask: new ort.Tensor("float32", mask, [rowSlots.length, 1, columns]),
    });
    await session.release();
    const y = out.y?.data as Float32Array;
    expect(y.length).toBe(expected.length);
    expect(relativeError(y, expected)).toBeLessThan(1e-5);
    expect(Math.max(...expected.map(Math.abs))).toBeGreaterThan(0.1);
  });
});

describe("engines on the dense and the gather path", () => {
  let root = "";
  let dense: Engine;
  let gather: Engine;
  let adapters: Record<string, AdapterWeights> = {};

  beforeAll(async () => {
    root = writeTinyModels();
    const dir = join(root, "tiny-qwen2");
    const { spec, weights } = await loadHfModel(dir);
    weights.close();
    adapters = Object.fromEntries(
      Object.keys(TINY_ADAPTERS).map((name) => [name, readPeftDir(join(dir, "adapters", name), spec)]),
    );
    const options = { modelDir: dir, maxSlots: 4, maxRank: 8 };
    dense = await createEngine({ ...options, loraPath: "dense" });
    gather = await createEngine({ ...options, loraPath: "gather" });
    for (const e of [dense, gather]) {
      e.setSlot(1, adapters.qv as AdapterWeights);
      e.setSlot(2, adapters.all7 as AdapterWeights);
      e.setSlot(3, adapters.patterns as AdapterWeights);
      e.setSlot(4, adapters.qv as AdapterWeights);
    }
  });
  afterAll(async () => {
    await dense?.dispose();
    await gather?.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  /** Runs the same schedule of steps on an engine: rows join, decode greedily and leave. */
  async function schedule(engine: Engine, slots: number[]): Promise<Float32Array[][]> {
    const seqs = slots.map((s) => engine.createSequence(s));
    const history: Float32Array[][] = [];
    let last: (Float32Array | undefined)[] = [];
    const rowsAt = (step: number): number[] =>
      slots.map((_, i) => i).filter((i) => i <= step + 1 && i + 4 > step);
    for (let step = 0; step < 6; step++) {
      const active = rowsAt(step);
      const rows: StepRow[] = active.map((i) => ({
        seq: seqs[i] as number,
        tokens: last[i] ? [argmax(last[i] as Float32Array)] : prompt(3 + 2 * i, i + 1),
      }));
      const out = await engine.step(rows);
      last = [...last];
      for (const [k, i] of active.entries()) last[i] = out[k];
      history.push(out);
    }
    for (const seq of seqs) engine.release(seq);
    return history;
  }

  async function expectSame(slots: number[]): Promise<void> {
    const [d, g] = [await schedule(dense, slots), await schedule(gather, slots)];
    expect(d.length).toBe(g.length);
    for (const [step, rows] of d.entries()) {
      for (const [r, l] of rows.entries())
        expect(relativeError(l, (g[step] as Float32Array[])[r] as Float32Array)).toBeLessThan(TOLERANCE);
    }
  }

  async function lastLogits(engine: Engine, slot: number, tokens: number[]): Promise<Float32Array> {
    const seq = engine.createSequence(slot);
    const [l] = await engine.step([{ seq, tokens }]);
    engine.release(seq);
    return l as Float32Array;
  }

  it("give the same logits for mixed batches with rows joining and leaving", async () => {
    await expectSame([3, 0, 1, 4, 2, 1]);
  });

  it("agree after slots are rewritten and cleared, and neighbours keep their adapters", async () => {
    const tokens = prompt(7, 9);
    const before: Float32Array[] = [];
    for (const slot of [1, 2, 3]) before.push(await lastLogits(dense, slot, tokens));
    for (const e of [dense, gather]) {
      e.setSlot(2, adapters.patterns as AdapterWeights);
      e.setSlot(4, null);
    }
    await expectSame([4, 2, 1, 3, 0, 2]);
    expect(
      relativeError(await lastLogits(dense, 4, tokens), await lastLogits(dense, 0, tokens)),
    ).toBeLessThan(1e-6);
    expect(relativeError(await lastLogits(dense, 2, tokens), before[2] as Float32Array)).toBeLessThan(1e-6);
    expect(relativeError(await lastLogits(dense, 1, tokens), before[0] as Float32Array)).toBeLessThan(1e-6);
    expect(relativeError(await lastLogits(dense, 3, tokens), before[2] as Float32Array)).toBeLessThan(1e-6);
    // The adapters do change the output, so the equalities above are not trivially met.
    expect(relativeError(before[0] as Float32Array, await lastLogits(dense, 0, tokens))).toBeGreaterThan(
      1e-3,
    );
  });
});

describe("graph variants", () => {
  it("dense graphs read slot_mask and no slot_ids, and never Gather a stack; fused ops replace every RMSNorm", async () => {
    const root = writeTinyModels();
    try {
      const model = await loadHfModel(join(root, "tiny-llama"));
      const build = (path: "dense" | "gather", fusedOps: boolean) =>
        model.facts.buildGraph(model.decoder, model.weights, {
          lora: { maxSlots: 2, maxRank: 4, modules: ["q_proj", "v_proj"], path },
          presentOutputs: false,
          fusedOps,
        });
      const count = (g: ReturnType<typeof build>, op: string) => g.nodes.filter((n) => n.op === op).length;
      const [dense, gather] = [build("dense", true), build("gather", false)];
      model.weights.close();
      const inputs = (g: typeof dense) => g.inputs.map((i) => i.name);
      expect(inputs(dense)).toContain("slot_mask");
      expect(inputs(dense)).not.toContain("slot_ids");
      expect(inputs(gather)).toContain("slot_ids");
      // Only the token embedding is gathered on the dense path; the gather path adds two per adapted linear.
      expect(count(dense, "Gather")).toBe(1);
      expect(count(gather, "Gather")).toBe(1 + 2 * 2 * model.decoder.numLayers);
      // Two norms per layer plus the final one, each one node, and no primitive RMSNorm left.
      expect(count(dense, "SimplifiedLayerNormalization")).toBe(2 * model.decoder.numLayers + 1);
      expect(count(dense, "ReduceMean")).toBe(0);
      expect(count(gather, "ReduceMean")).toBe(2 * model.decoder.numLayers + 1);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("choosing the LoRA path", () => {
  it("defaults to dense on WebGPU within the measured column bound, else (and always on CPU) to gather", () => {
    expect(defaultLoraPath("webgpu", 8, 16)).toBe("dense");
    expect(defaultLoraPath("webgpu", DENSE_MAX_COLUMNS / 16, 16)).toBe("dense");
    expect(defaultLoraPath("webgpu", DENSE_MAX_COLUMNS / 16 + 1, 16)).toBe("gather");
    expect(defaultLoraPath("cpu", 2, 4)).toBe("gather");
  });

  it("refuses an unknown loraPath, naming the field, the rule and the value", async () => {
    const root = writeTinyModels();
    try {
      const error = await createEngine({
        modelDir: join(root, "tiny-llama"),
        maxSlots: 1,
        maxRank: 4,
        loraPath: "fused" as "dense",
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AppError);
      expect((error as AppError).message).toBe('loraPath must be "dense" or "gather"; got "fused"');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
