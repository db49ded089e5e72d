// The engine against the plain-loops reference forward (test/helpers/naive-llama.ts) on the three tiny model
// shapes of the HF fixtures, with and without each adapter kind, on both CPU backends: last-position logits
// within 1e-4 relative, greedy continuations through the KV cache equal to full forwards.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import type { AdapterWeights, Backend, Engine } from "../../gpu-runner/engine/types.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import {
  argmax,
  loadNaiveModel,
  type NaiveModel,
  naiveGreedy,
  naiveLastLogits,
  relativeError,
} from "../helpers/naive-llama.ts";
import { prompt, TINY_ADAPTERS, TINY_MODELS, writeTinyModels } from "../helpers/tiny-models.ts";

const ADAPTER_NAMES = Object.keys(TINY_ADAPTERS);
let root = "";

beforeAll(() => {
  root = writeTinyModels();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function greedy(engine: Engine, slot: number, tokens: number[], steps: number): Promise<number[]> {
  const seq = engine.createSequence(slot);
  const out: number[] = [];
  let logits = (await engine.step([{ seq, tokens }]))[0] as Float32Array;
  for (let i = 0; i < steps; i++) {
    out.push(argmax(logits));
    if (i < steps - 1) logits = (await engine.step([{ seq, tokens: [out[i] as number] }]))[0] as Float32Array;
  }
  engine.release(seq);
  return out;
}

describe.each(["native", "wasm"] as Backend[])("engine on %s CPU", (backend) => {
  describe.each(Object.keys(TINY_MODELS))("%s", (model) => {
    let engine: Engine;
    let naive: NaiveModel;
    const adapters = new Map<string, AdapterWeights>();

    beforeAll(async () => {
      const dir = join(root, model);
      engine = await createEngine({
        modelDir: dir,
        backend,
        maxSlots: ADAPTER_NAMES.length,
        maxRank: 8,
        threads: 1,
      });
      naive = loadNaiveModel(dir);
      const { spec, weights } = await loadHfModel(dir);
      weights.close();
      ADAPTER_NAMES.forEach((name, i) => {
        const w = readPeftDir(join(dir, "adapters", name), spec);
        adapters.set(name, w);
        engine.setSlot(i + 1, w);
      });
    });
    afterAll(() => engine.dispose());

    it.each(ADAPTER_NAMES)(
      "adapter %s changes the logits (so the parity below is not vacuous)",
      async (name) => {
        const tokens = prompt(5, 200);
        const slot = ADAPTER_NAMES.indexOf(name) + 1;
        const rows = [engine.createSequence(0), engine.createSequence(slot)].map((seq) => ({ seq, tokens }));
        const [base, adapted] = await engine.step(rows);
        for (const r of rows) engine.release(r.seq);
        expect(relativeError(adapted as Float32Array, base as Float32Array)).toBeGreaterThan(1e-2);
      },
    );

    it("a sequence growing past its cache block (64 positions) keeps matching full forwards", async () => {
      const tokens = prompt(60, 300);
      const seq = engine.createSequence(2);
      let logits = (await engine.step([{ seq, tokens }]))[0] as Float32Array;
      for (let i = 0; i < 7; i++) {
        expect(
          relativeError(logits, naiveLastLogits(naive, tokens, adapters.get(ADAPTER_NAMES[1] as string))),
        ).toBeLessThan(1e-4);
        tokens.push(argmax(logits));
        logits = (await engine.step([{ seq, tokens: [tokens.at(-1) as number] }]))[0] as Float32Array;
      }
      engine.release(seq);
    });

    describe.each([null, ...ADAPTER_NAMES])("adapter %s", (adapter) => {
      const slot = adapter === null ? 0 : ADAPTER_NAMES.indexOf(adapter) + 1;
      const weights = () => (adapter === null ? undefined : adapters.get(adapter));

      it.each([5, 17])("prompt of %i tokens: last logits within 1e-4 relative", async (length) => {
        const tokens = prompt(length, length + slot);
        const seq = engine.createSequence(slot);
        const [logits] = await engine.step([{ seq, tokens }]);
        engine.release(seq);
        expect(relativeError(logits as Float32Array, naiveLastLogits(naive, tokens, weights()))).toBeLessThan(
          1e-4,
        );
      });

      it("greedy 8 tokens through the KV cache equal full forwards", async () => {
        const tokens = prompt(5, 100 + slot);
        expect(await greedy(engine, slot, tokens, 8)).toEqual(naiveGreedy(naive, tokens, 8, weights()));
      });
    });
  });
});
