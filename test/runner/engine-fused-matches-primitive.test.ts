// The fused decoder (GroupQueryAttention over fixed lanes with in-place KV buffers, SkipSimplifiedLayer-
// Normalization, packed q/k/v and gate/up) is the primitive graph's math with other kernels: in float32 on
// CPU both engines give the same logits for mixed batches whose rows join (as a first prompt, or prefilled
// alone and merged into their lane while other lanes hold caches, or in chunks), decode and leave, on all
// three model families.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import type { AdapterWeights, Engine, StepRow } from "../../gpu-runner/engine/types.ts";
import { AppError } from "../../src/errors.ts";
import { argmax, relativeError } from "../helpers/naive-llama.ts";
import { prompt, TINY_ADAPTERS, writeTinyModels } from "../helpers/tiny-models.ts";

// Same math in float32, different kernels and summation order.
const TOLERANCE = 2e-5;

let root = "";
beforeAll(() => {
  root = writeTinyModels();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Rows join in waves, decode greedily for a few steps and leave; every step's logits, per row. */
async function schedule(engine: Engine, plan: { slot: number; join: number; prompt: number[] }[]) {
  const seqs: (number | null)[] = plan.map(() => null);
  const last: (Float32Array | null)[] = plan.map(() => null);
  const history: Float32Array[][] = [];
  for (let step = 0; step < 8; step++) {
    const rows: StepRow[] = [];
    const who: number[] = [];
    plan.forEach((p, i) => {
      if (step === p.join) seqs[i] = engine.createSequence(p.slot);
      if (step === p.join + 4 && seqs[i] !== null) {
        engine.release(seqs[i] as number);
        seqs[i] = null;
      }
      if (seqs[i] === null) return;
      rows.push({ seq: seqs[i] as number, tokens: last[i] ? [argmax(last[i] as Float32Array)] : p.prompt });
      who.push(i);
    });
    if (rows.length === 0) continue;
    const out = await engine.step(rows);
    who.forEach((i, k) => {
      last[i] = out[k] as Float32Array;
    });
    history.push(out);
  }
  for (const s of seqs) if (s !== null) engine.release(s);
  return history;
}

describe.each(["tiny-llama", "tiny-llama3", "tiny-qwen2"])("fused decoder on %s", (name) => {
  let fused: Engine;
  let primitive: Engine;
  // Split-K products (the WebGPU default) with slices small enough that this model's products split.
  let split: Engine;

  beforeAll(async () => {
    const dir = join(root, name);
    const { spec, weights } = await loadHfModel(dir);
    weights.close();
    const adapters = Object.keys(TINY_ADAPTERS).map((a) => readPeftDir(join(dir, "adapters", a), spec));
    const options = { modelDir: dir, maxSlots: 3, maxRank: 8 };
    fused = await createEngine({ ...options, graph: "fused", lanes: 4, contextLength: 64 });
    primitive = await createEngine({ ...options, graph: "primitive" });
    split = await createEngine({ ...options, graph: "fused", lanes: 4, contextLength: 64, splitK: 16 });
    for (const e of [fused, primitive, split]) {
      for (const [i, a] of adapters.entries()) e.setSlot(i + 1, a as AdapterWeights);
    }
  });
  afterAll(async () => {
    await fused?.dispose();
    await primitive?.dispose();
    await split?.dispose();
  });

  it("gives the primitive graph's logits for a first prompt, decode, joins into held lanes and leaves", async () => {
    const plan = [
      { slot: 1, join: 0, prompt: prompt(5, 1) },
      { slot: 0, join: 0, prompt: prompt(3, 2) },
      { slot: 3, join: 0, prompt: prompt(7, 3) },
      { slot: 2, join: 2, prompt: prompt(4, 4) }, // joins while the others hold caches
      { slot: 1, join: 5, prompt: prompt(2, 5) }, // takes the lane a finished row left
    ];
    const p = await schedule(primitive, plan);
    for (const engine of [fused, split]) {
      const f = await schedule(engine, plan);
      expect(f.length).toBe(p.length);
      expect(f.length).toBeGreaterThan(6);
      for (const [step, rows] of f.entries()) {
        expect(rows.length).toBe((p[step] as Float32Array[]).length);
        for (const [r, l] of rows.entries()) {
          expect(relativeError(l, (p[step] as Float32Array[])[r] as Float32Array)).toBeLessThan(TOLERANCE);
        }
      }
    }
  });

  it("gives the primitive graph's logits for a prompt fed in chunks while another lane decodes", async () => {
    const run = async (engine: Engine) => {
      const other = engine.createSequence(1);
      const [first] = await engine.step([{ seq: other, tokens: prompt(4, 8) }]);
      const seq = engine.createSequence(2);
      const tokens = prompt(9, 9);
      const out = [first as Float32Array];
      out.push(...(await engine.step([{ seq, tokens: tokens.slice(0, 4) }])));
      out.push(
        ...(await engine.step([
          { seq, tokens: tokens.slice(4) },
          { seq: other, tokens: [argmax(first as Float32Array)] },
        ])),
      );
      out.push(
        ...(await engine.step([
          { seq, tokens: [5] },
          { seq: other, tokens: [6] },
        ])),
      );
      engine.release(seq);
      engine.release(other);
      return out;
    };
    const p = await run(primitive);
    for (const engine of [fused, split]) {
      const f = await run(engine);
      expect(f.length).toBe(6);
      for (const [i, l] of f.entries())
        expect(relativeError(l, p[i] as Float32Array)).toBeLessThan(TOLERANCE);
    }
  });

  it("adapters change the output (so the agreement above is not trivial)", async () => {
    const tokens = prompt(6, 7);
    const run = async (slot: number) => {
      const seq = fused.createSequence(slot);
      const [l] = await fused.step([{ seq, tokens }]);
      fused.release(seq);
      return l as Float32Array;
    };
    expect(relativeError(await run(2), await run(0))).toBeGreaterThan(1e-3);
  });

  it("refuses a sequence beyond its lanes and one longer than its context", async () => {
    const seqs = [0, 1, 2, 3].map(() => fused.createSequence(0));
    expect(() => fused.createSequence(0)).toThrow(AppError);
    for (const s of seqs) fused.release(s);
    const seq = fused.createSequence(0);
    await expect(fused.step([{ seq, tokens: prompt(65, 1) }])).rejects.toThrow(/max positions/);
    fused.release(seq);
  });
});
