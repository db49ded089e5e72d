// The training graph computes every family we serve (gpu-runner/training/train-graph.ts): a layer that slides
// reads a sliding-window mask that hides keys `sliding_window` or more positions back, gemma3's local layers
// read their own rope table, and the examples may use the model's whole context, since only the fused graph
// (no sliding-window mask) stops where full attention still equals the model's. What the masks and ropes
// compute is checked against PEFT in train-sgd-matches-peft.test.ts and against the engine in
// train-graph-matches-engine.test.ts.
import { describe, expect, it } from "vitest";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { buildTrainGraph } from "../../gpu-runner/training/train-graph.ts";

const SEQ = 9;

/** The additive mask an initializer holds, as rows of 0 (visible) and 1 (hidden) for the first query group. */
function visibility(data: Float32Array, seq: number): number[][] {
  return Array.from({ length: seq }, (_, q) =>
    Array.from({ length: seq }, (_, s) => ((data[q * seq + s] as number) < -1e8 ? 1 : 0)),
  );
}

describe("training graph per family", () => {
  it.each([
    ["tiny-llama", ["causal_mask"], ["rope_cos"]],
    ["tiny-qwen3", ["causal_mask", "sliding_mask"], ["rope_cos"]],
    ["tiny-gemma2", ["causal_mask", "sliding_mask"], ["rope_cos"]],
    ["tiny-gemma3", ["causal_mask", "sliding_mask"], ["rope_cos", "rope_cos.1"]],
    ["tiny-phi3", ["sliding_mask"], ["rope_cos"]],
  ])("%s has masks %j and rope tables %j", async (name, masks, ropes) => {
    const model = await loadHfModel(`test/fixtures/hf/${name}`);
    try {
      const g = buildTrainGraph({
        decoder: model.decoder,
        ropes: model.ropes,
        weights: model.weights,
        modules: [],
        batch: 1,
        seq: SEQ,
        dropout: false,
        backward: false,
      });
      const names = g.initializers.map((t) => t.name);
      expect(names.filter((n) => n.endsWith("_mask")).sort()).toEqual(masks);
      expect(names.filter((n) => n.startsWith("rope_cos")).sort()).toEqual(ropes);
      const rope = g.initializers.find((t) => t.name === "rope_cos");
      expect(rope?.dims).toEqual([1, SEQ, 1, model.decoder.math.rotaryDim]);
      const sliding = g.initializers.find((t) => t.name === "sliding_mask");
      const window = model.decoder.math.slidingWindow;
      if (sliding && window !== null) {
        const seen = visibility(sliding.provide() as Float32Array, SEQ);
        // Query q sees keys q - window + 1 .. q: the window, itself included.
        seen.forEach((row, q) => {
          row.forEach((hidden, s) => {
            expect(hidden, `query ${q}, key ${s}`).toBe(s <= q && s > q - window ? 0 : 1);
          });
        });
      }
    } finally {
      model.weights.close();
    }
  });

  it("a sliding window caps only the fused graph: training and the primitive graph see the whole context", async () => {
    const model = await loadHfModel("test/fixtures/hf/tiny-qwen3");
    model.weights.close();
    expect([model.maxPositions, model.fullAttentionPositions]).toEqual([128, 6]);
    const llama = await loadHfModel("test/fixtures/hf/tiny-llama");
    llama.weights.close();
    expect([llama.maxPositions, llama.fullAttentionPositions]).toEqual([128, 128]);
  });
});
