// Parity with Hugging Face for the families beyond the llama shape (docs/architecture.md#invariants):
// qwen3 (q/k norms), gemma2 (soft-capping, sandwich norms, GeGLU, alternating sliding layers), gemma3_text
// (q/k norms, local layers on their own rope) and phi3 (fused qkv_proj and gate_up_proj, partial rotary,
// LongRoPE), each with a sliding window shorter than the long prompt. The references were computed by
// transformers + PEFT in float32 (test/fixtures/README.md, "Families"): greedy tokens equal for 12 steps,
// last-position logits within 1e-4 relative, with no adapter, PEFT's `all-linear` and an attention-only
// rsLoRA, and a mixed batch equal to PEFT's `adapter_names` forward and to each row run alone; on both LoRA
// paths and both CPU backends.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import type { LoraPath } from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import type { Backend, Engine } from "../../gpu-runner/engine/types.ts";
import {
  FAMILY_ADAPTERS,
  FAMILY_MODELS,
  FAMILY_TOKENS,
  FIXTURES,
  familySlotOf,
  readFamilyExpected,
  runGreedySteps,
} from "../helpers/hf-fixtures.ts";
import { relativeError } from "../helpers/naive-llama.ts";

/** generation_config.json's eos_token_id lists, as the fixture script wrote them (several end tokens). */
const EOS: Record<string, number[]> = {
  "tiny-qwen3": [2, 5],
  "tiny-gemma2": [2, 107],
  "tiny-gemma3": [2, 106],
  "tiny-phi3": [2, 7],
};

const RUNS: [Backend, LoraPath][] = [
  ["native", "gather"],
  ["native", "dense"],
  ["wasm", "gather"],
];

describe.each(RUNS)("HF parity of the other families on %s CPU, %s LoRA path", (backend, loraPath) => {
  describe.each(FAMILY_MODELS)("%s", (model) => {
    const dir = join(FIXTURES, model);
    const expected = readFamilyExpected(dir);
    let engine: Engine;

    beforeAll(async () => {
      engine = await createEngine({
        modelDir: dir,
        backend,
        loraPath,
        maxSlots: FAMILY_ADAPTERS.length,
        maxRank: 8,
      });
      const { spec, weights } = await loadHfModel(dir);
      weights.close();
      for (const [i, name] of FAMILY_ADAPTERS.entries())
        engine.setSlot(i + 1, readPeftDir(join(dir, "adapters", name), spec));
    });
    afterAll(() => engine.dispose());

    it("serves the whole context and every eos of generation_config.json", () => {
      expect(engine.info.maxPositions).toBe(128);
      expect(engine.info.eosTokenIds).toEqual(EOS[model]);
    });

    it.each(expected.cases.map((c) => [c.adapter ?? "base", c.input_ids.length, c] as const))(
      "%s, %i-token prompt: logits within 1e-4 relative and the same 12 greedy tokens",
      async (_adapter, _length, c) => {
        const { logits, greedy } = await runGreedySteps(engine, [c], FAMILY_TOKENS, familySlotOf);
        expect(relativeError(logits[0] as Float32Array, c.last_logits)).toBeLessThan(1e-4);
        expect(greedy[0]).toEqual(c.greedy);
      },
    );

    it("rows of every length and adapter in one batch (short rows left-padded) each match HF", async () => {
      // Padding shifts a short row's positions in the block: its window and LongRoPE choice must not move.
      const batch = await runGreedySteps(engine, expected.cases, FAMILY_TOKENS, familySlotOf);
      for (const [i, c] of expected.cases.entries()) {
        expect(relativeError(batch.logits[i] as Float32Array, c.last_logits)).toBeLessThan(1e-4);
        expect(batch.greedy[i]).toEqual(c.greedy);
      }
    });

    it("a mixed-adapter batch matches PEFT's adapter_names rows and each request run alone", async () => {
      const batch = await runGreedySteps(engine, expected.mixed_batch, FAMILY_TOKENS, familySlotOf);
      for (const [i, c] of expected.mixed_batch.entries()) {
        const alone = await runGreedySteps(engine, [c], FAMILY_TOKENS, familySlotOf);
        expect(relativeError(batch.logits[i] as Float32Array, c.last_logits)).toBeLessThan(1e-4);
        expect(batch.greedy[i]).toEqual(c.greedy);
        expect(relativeError(batch.logits[i] as Float32Array, alone.logits[0] as Float32Array)).toBeLessThan(
          1e-5,
        );
        expect(alone.greedy[0]).toEqual(c.greedy);
      }
    });
  });
});
