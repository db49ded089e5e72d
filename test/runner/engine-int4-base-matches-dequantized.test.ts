// The int4 base (MatMulNBits, onnx/int4.ts) computes with exactly the weights its packing encodes: an int4
// engine gives the logits of a float32 engine whose linears were replaced by their dequantized values, so
// packing, scales and zero points are laid out as onnxruntime reads them. Quantization itself stays close
// to the float32 model and changes the output (it is not a no-op).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngineFromModel } from "../../gpu-runner/engine/engine.ts";
import { type HfModel, loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import { dequantizeInt4, quantizeInt4 } from "../../gpu-runner/engine/onnx/int4.ts";
import type { WeightSource } from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import type { Engine } from "../../gpu-runner/engine/types.ts";
import { relativeError } from "../helpers/naive-llama.ts";
import { prompt, writeTinyModels } from "../helpers/tiny-models.ts";

const LINEAR = /\.(q|k|v|o|gate|up|down)_proj\.weight$/;

/** Every linear weight replaced by what its int4 encoding decodes to; everything else as stored. */
function dequantizedWeights(model: HfModel): WeightSource {
  return {
    get(name) {
      const w = model.weights.get(name);
      if (!LINEAR.test(name)) return w;
      const [n, k] = model.weights.shape(name) as [number, number];
      return dequantizeInt4(quantizeInt4(w, n, k), n, k);
    },
  };
}

describe("quantizeInt4", () => {
  it("round-trips within half a step per block, keeps zeros exact, and handles K not a multiple of 32", () => {
    const [n, k] = [3, 40];
    const w = Float32Array.from({ length: n * k }, (_, i) =>
      i % 7 === 0 ? 0 : Math.sin(i * 1.3) * (1 + (i % 5)),
    );
    const back = dequantizeInt4(quantizeInt4(w, n, k), n, k);
    for (let row = 0; row < n; row++) {
      for (const [start, end] of [
        [0, 32],
        [32, 40],
      ] as const) {
        const block = Array.from(w.subarray(row * k + start, row * k + end));
        const step = (Math.max(0, ...block) - Math.min(0, ...block)) / 15;
        for (let i = start; i < end; i++) {
          expect(Math.abs((back[row * k + i] as number) - (w[row * k + i] as number))).toBeLessThanOrEqual(
            step / 2 + 1e-6,
          );
          if (w[row * k + i] === 0) expect(back[row * k + i]).toBe(0);
        }
      }
    }
  });
});

describe.each(["tiny-llama", "tiny-qwen2"])("int4 base on %s", (name) => {
  let root = "";
  let model: HfModel;
  let int4: Engine;
  let reference: Engine;
  let plain: Engine;

  beforeAll(async () => {
    root = writeTinyModels();
    const dir = join(root, name);
    model = await loadHfModel(dir);
    const adapter = readPeftDir(join(dir, "adapters", "all7"), model.spec);
    const options = {
      maxSlots: 1,
      maxRank: 8,
      graph: "fused" as const,
      precision: "float32" as const,
      lanes: 2,
      contextLength: 32,
    };
    int4 = await createEngineFromModel(model, { ...options, quantize: "int4" });
    reference = await createEngineFromModel(model, { ...options, weights: dequantizedWeights(model) });
    plain = await createEngineFromModel(model, options);
    for (const e of [int4, reference, plain]) e.setSlot(1, adapter);
  });
  afterAll(async () => {
    for (const e of [int4, reference, plain]) await e?.dispose();
    model?.weights.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function logits(engine: Engine, slot: number): Promise<Float32Array> {
    const seq = engine.createSequence(slot);
    const [first] = await engine.step([{ seq, tokens: prompt(9, 3) }]);
    const [next] = await engine.step([{ seq, tokens: [7] }]);
    engine.release(seq);
    expect(first?.length).toBe(engine.info.vocabSize);
    return next as Float32Array;
  }

  it("gives the logits of the dequantized float32 model, with and without an adapter", async () => {
    for (const slot of [0, 1]) {
      expect(relativeError(await logits(int4, slot), await logits(reference, slot))).toBeLessThan(1e-4);
    }
  });

  it("stays near the unquantized model but is not it", async () => {
    const [q, f] = [await logits(int4, 1), await logits(plain, 1)];
    const error = relativeError(q, f);
    expect(error).toBeGreaterThan(1e-4);
    expect(error).toBeLessThan(0.5);
  });
});
