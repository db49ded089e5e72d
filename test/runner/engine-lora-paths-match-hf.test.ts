// Both LoRA paths of the graph (gather: per-row copies of the slot stacks; dense: concatenated stacks and a
// slot mask), with primitive or fused ops (RMSNorm as one node, the WebGPU default), must each keep
// parity with Hugging Face (docs/architecture.md#invariants): every HF fixture case and the mixed-adapter
// batch give HF's greedy tokens and logits within 1e-4 relative, on both CPU backends, whichever variant
// the defaults would pick.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import type { Backend, Engine } from "../../gpu-runner/engine/types.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import type { LoraPath } from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import { ADAPTERS, FIXTURES, MODELS, readExpected, runGreedy } from "../helpers/hf-fixtures.ts";
import { relativeError } from "../helpers/naive-llama.ts";

const VARIANTS: [LoraPath, "primitive ops" | "fused ops"][] = [
  ["gather", "primitive ops"],
  ["dense", "primitive ops"],
  ["dense", "fused ops"],
  ["gather", "fused ops"],
];
const BACKENDS: Backend[] = ["native", "wasm"];

describe.each(VARIANTS.flatMap(([path, ops]) => BACKENDS.map((backend) => [path, ops, backend] as const)))(
  "HF parity with the %s LoRA path and %s on %s CPU",
  (loraPath, ops, backend) => {
    describe.each(MODELS)("%s", (model) => {
      const dir = join(FIXTURES, model);
      const expected = readExpected(dir);
      let engine: Engine;

      beforeAll(async () => {
        engine = await createEngine({
          modelDir: dir,
          backend,
          maxSlots: ADAPTERS.length,
          maxRank: 8,
          loraPath,
          fusedOps: ops === "fused ops",
        });
        const { spec, weights } = await loadHfModel(dir);
        weights.close();
        for (const [i, name] of ADAPTERS.entries())
          engine.setSlot(i + 1, readPeftDir(join(dir, "adapters", name), spec));
      });
      afterAll(() => engine.dispose());

      it("every fixture case alone: logits within 1e-4 relative and the same 8 greedy tokens", async () => {
        for (const c of expected.cases) {
          const { logits, greedy } = await runGreedy(engine, [c]);
          expect(relativeError(logits[0] as Float32Array, c.last_logits)).toBeLessThan(1e-4);
          expect(greedy[0]).toEqual(c.greedy);
        }
      });

      it("the mixed-adapter batch matches HF's batched rows", async () => {
        const batch = await runGreedy(engine, expected.mixed_batch);
        for (const [i, c] of expected.mixed_batch.entries()) {
          expect(relativeError(batch.logits[i] as Float32Array, c.last_logits)).toBeLessThan(1e-4);
          expect(batch.greedy[i]).toEqual(c.greedy);
        }
      });
    });
  },
);
