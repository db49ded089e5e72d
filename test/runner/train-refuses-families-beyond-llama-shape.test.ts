// The training graph (gpu-runner/training/train-graph.ts) has the llama shape only. A base of another family
// is refused by name before a session is built, so no adapter is ever trained on math the served model
// does not compute; and a sliding window caps training examples where full attention still equals it.
import { describe, expect, it } from "vitest";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { buildTrainGraph } from "../../gpu-runner/training/train-graph.ts";
import { AppError } from "../../src/errors.ts";

const BEYOND: [string, string][] = [
  ["tiny-qwen3", "q_norm/k_norm"],
  [
    "tiny-gemma2",
    "(1 + w) RMSNorm, pre/post feed-forward norms, scaled embeddings, GeGLU, query_pre_attn_scalar, logit soft-capping",
  ],
  ["tiny-phi3", "partial rotary, fused qkv_proj/gate_up_proj"],
];

describe("training refuses bases it cannot compute", () => {
  it.each(BEYOND)("%s is refused naming %s", async (name, features) => {
    const model = await loadHfModel(`test/fixtures/hf/${name}`);
    try {
      let error: unknown;
      try {
        buildTrainGraph({
          decoder: model.decoder,
          rope: model.rope,
          weights: model.weights,
          modules: [],
          batch: 1,
          seq: 4,
          dropout: false,
          backward: false,
        });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(AppError);
      expect((error as AppError).code).toBe("invalid_model");
      expect((error as AppError).message).toBe(
        `the base model: training supports llama, mistral and qwen2; this model has ${features} (not supported)`,
      );
    } finally {
      model.weights.close();
    }
  });

  it("a sliding window serves the whole context but caps what full attention (training, fused) may see", async () => {
    const model = await loadHfModel("test/fixtures/hf/tiny-qwen3");
    model.weights.close();
    expect([model.maxPositions, model.fullAttentionPositions]).toEqual([128, 6]);
    const llama = await loadHfModel("test/fixtures/hf/tiny-llama");
    llama.weights.close();
    expect([llama.maxPositions, llama.fullAttentionPositions]).toEqual([128, 128]);
  });
});
