// The training graph and the serving Engine are two graphs built from one model: with the same PEFT adapter
// they must give the same next-token log-probabilities, or a trained adapter would behave differently when
// served. Checked position by position on the tiny fixtures with their PEFT adapters, for every family, on
// a sequence longer than each sliding window (and within phi3's LongRoPE original context, where stepwise
// decoding and one forward pass read the same frequencies).
import { describe, expect, it } from "vitest";
import { createEngineFromModel } from "../../gpu-runner/engine/engine.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import { paramsFromAdapter } from "../../gpu-runner/training/lora-params.ts";
import { OptimizerConfigSchema } from "../../gpu-runner/training/optimizer.ts";
import { LoraTrainer } from "../../gpu-runner/training/trainer.ts";

function logSoftmaxAt(logits: Float32Array, id: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  return (logits[id] as number) - max - Math.log(sum);
}

describe("training graph and Engine agree", () => {
  it.each([
    ["tiny-llama", "all7"],
    ["tiny-qwen2", "patterns"],
    ["tiny-qwen3", "all-linear"],
    ["tiny-gemma2", "all-linear"],
    ["tiny-gemma3", "all-linear"],
    ["tiny-phi3", "all-linear"],
  ])("%s with adapter %s", async (name, adapter) => {
    const model = await loadHfModel(`test/fixtures/hf/${name}`);
    const weights = readPeftDir(`test/fixtures/hf/${name}/adapters/${adapter}`, model.spec);
    const byName = new Map(model.spec.modules.map((m) => [m.name, m]));
    const modules = weights.modules.map((w) => {
      const m = byName.get(w.module);
      return {
        name: w.module,
        inFeatures: m?.inFeatures ?? 0,
        outFeatures: m?.outFeatures ?? 0,
        rank: w.rank,
        scale: w.scale,
      };
    });
    const params = paramsFromAdapter(modules, weights);
    const optimizer = OptimizerConfigSchema.parse({});
    const trainer = new LoraTrainer({
      model,
      params,
      optimizer,
      batchSize: 1,
      threads: 1,
      dropout: 0,
      seed: 0,
    });
    const tokens = [3, 77, 140, 9, 201, 45, 45, 12, 250, 6, 31, 64, 8];
    if (model.decoder.math.slidingWindow !== null) {
      expect(tokens.length).toBeGreaterThan(model.decoder.math.slidingWindow);
    }
    const ours = await trainer.evaluate([{ tokens, target: tokens.map(() => true) }], 16);
    await trainer.dispose();
    const maxRank = Math.max(...modules.map((m) => m.rank));
    const engine = await createEngineFromModel(model, { maxSlots: 1, maxRank, threads: 1 });
    engine.setSlot(1, weights);
    const seq = engine.createSequence(1);
    let served = 0;
    for (let i = 0; i + 1 < tokens.length; i++) {
      const [logits] = await engine.step([{ seq, tokens: [tokens[i] as number] }]);
      served -= logSoftmaxAt(logits as Float32Array, tokens[i + 1] as number);
    }
    await engine.dispose();
    model.weights.close();
    expect(ours.targets).toBe(tokens.length - 1);
    expect(Math.abs(ours.nllSum - served) / served).toBeLessThan(1e-5);
  });
});
