// Parity with Hugging Face (docs/architecture.md#invariants): the fixtures in test/fixtures/hf were
// computed by transformers + PEFT in float32 (test/fixtures/README.md). On both CPU backends the engine
// must give the same greedy tokens and last-position logits within 1e-4 relative, and each row of a
// mixed-adapter batch must equal HF's batched row and the same request run alone.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import type { Backend, Engine } from "../../gpu-runner/engine/types.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import { ADAPTERS, FIXTURES, MODELS, readExpected, runGreedy } from "../helpers/hf-fixtures.ts";
import { relativeError } from "../helpers/naive-llama.ts";

describe.each(["native", "wasm"] as Backend[])("HF parity on %s CPU", (backend) => {
  describe.each(MODELS)("%s", (model) => {
    const dir = join(FIXTURES, model);
    const expected = readExpected(dir);
    let engine: Engine;

    beforeAll(async () => {
      engine = await createEngine({ modelDir: dir, backend, maxSlots: ADAPTERS.length, maxRank: 8 });
      const { spec, weights } = await loadHfModel(dir);
      weights.close();
      for (const [i, name] of ADAPTERS.entries())
        engine.setSlot(i + 1, readPeftDir(join(dir, "adapters", name), spec));
    });
    afterAll(() => engine.dispose());

    it.each(expected.cases.map((c) => [c.adapter ?? "base", c.input_ids.length, c] as const))(
      "%s, %i-token prompt: logits within 1e-4 relative and the same 8 greedy tokens",
      async (_adapter, _length, c) => {
        const { logits, greedy } = await runGreedy(engine, [c]);
        expect(relativeError(logits[0] as Float32Array, c.last_logits)).toBeLessThan(1e-4);
        expect(greedy[0]).toEqual(c.greedy);
      },
    );

    it("a mixed-adapter batch matches HF's batched rows and each request run alone", async () => {
      const batch = await runGreedy(engine, expected.mixed_batch);
      for (const [i, c] of expected.mixed_batch.entries()) {
        const alone = await runGreedy(engine, [c]);
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
