// Whole-model LoRA gradients of the training graph against central finite differences of its own
// forward-only loss, on the tiny llama and qwen2 fixtures (qwen2: biases and tied embeddings), and the
// gradients of base tensors in full-parameter mode (norm, head, embedding through Gather, a linear, a bias).
import { afterAll, describe, expect, it } from "vitest";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { createRng } from "../../src/random.ts";
import type { TokenRow } from "../../gpu-runner/training/batches.ts";
import { type LoraParams, tensorsOf, trainModules } from "../../gpu-runner/training/lora-params.ts";
import { transposeMatrix } from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import { baseGraphDims } from "../../gpu-runner/training/train-graph.ts";
import { OptimizerConfigSchema } from "../../gpu-runner/training/optimizer.ts";
import { LoraTrainer } from "../../gpu-runner/training/trainer.ts";
import { PeftLoraConfigSchema } from "../../src/contracts/peft-config.ts";

const ROWS: TokenRow[] = [
  { tokens: [5, 17, 33, 101, 7, 250, 64, 12, 9, 199], target: [0, 0, 0, 1, 1, 1, 1, 1, 1, 1].map(Boolean) },
  { tokens: [8, 140, 77, 31, 2, 90, 11], target: [0, 0, 1, 1, 1, 1, 1].map(Boolean) },
];
const SEQ = 16;
const trainers: LoraTrainer[] = [];
afterAll(async () => {
  for (const t of trainers) await t.dispose();
});

async function setup(dir: string, targets: string[], seed: number, baseNames: string[] = []) {
  const model = await loadHfModel(dir);
  const config = PeftLoraConfigSchema.parse({
    peft_type: "LORA",
    r: 4,
    lora_alpha: 8,
    target_modules: targets,
  });
  const modules = trainModules(config, model.spec);
  const rng = createRng(seed);
  const random = (n: number) => Float32Array.from({ length: n }, () => 0.1 * rng.nextNormal());
  const params: LoraParams = {
    modules,
    a: modules.map((m) => random(m.rank * m.inFeatures)),
    b: modules.map((m) => random(m.outFeatures * m.rank)),
    base: baseNames.map((name) => {
      const dims = baseGraphDims(name, model.weights.shape(name));
      const hf = model.weights.get(name);
      const data =
        dims[0] === model.weights.shape(name)[0]
          ? hf
          : transposeMatrix(hf, dims[1] as number, dims[0] as number);
      return { name, dims, data };
    }),
  };
  const optimizer = OptimizerConfigSchema.parse({ kind: "sgd", lr: 1 });
  const trainer = new LoraTrainer({ model, params, optimizer, batchSize: 2, threads: 1, dropout: 0, seed });
  trainers.push(trainer);
  return { trainer, params, rng };
}

/** Scaled to norm 1, so that a step of eps stays where the loss is near-linear. */
function unit(d: Float32Array[]): Float32Array[] {
  const norm = Math.sqrt(d.reduce((s, t) => s + t.reduce((a, v) => a + v * v, 0), 0));
  return d.map((t) => t.map((v) => v / norm));
}

describe("whole-model LoRA gradients match finite differences", () => {
  it.each([
    [
      "test/fixtures/hf/tiny-llama",
      ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
      [],
    ],
    ["test/fixtures/hf/tiny-qwen2", ["q_proj", "v_proj", "down_proj"], []],
    [
      "test/fixtures/hf/tiny-llama",
      ["q_proj"],
      [
        "model.norm.weight",
        "lm_head.weight",
        "model.embed_tokens.weight",
        "model.layers.1.mlp.up_proj.weight",
      ],
    ],
    [
      "test/fixtures/hf/tiny-qwen2",
      ["v_proj"],
      ["model.embed_tokens.weight", "model.layers.0.self_attn.k_proj.bias"],
    ],
  ])("%s, LoRA on %j, base tensors %j", async (dir, targets, baseNames) => {
    const { trainer, params, rng } = await setup(dir, targets, 5, baseNames);
    const total = ROWS.reduce((n, r) => n + r.target.filter((t, i) => t && i > 0).length, 0);
    const { grads } = await trainer.gradients(ROWS, SEQ, 1 / total);
    const tensors = tensorsOf(params);
    const lossAt = async () => {
      const e = await trainer.evaluate(ROWS, SEQ);
      return e.nllSum / e.targets;
    };
    const shift = (dir: Float32Array[], k: number) => {
      tensors.forEach((t, i) => {
        const d = dir[i] as Float32Array;
        for (let j = 0; j < t.length; j++) t[j] = (t[j] as number) + k * (d[j] as number);
      });
    };
    // Three random directions through every tensor, then single entries of the first A and the last B.
    const directions = [0, 1, 2].map(() =>
      unit(tensors.map((t) => Float32Array.from(t, () => rng.nextNormal()))),
    );
    for (const [k, index] of [
      [0, 3],
      [tensors.length - 1, 1],
    ] as const) {
      directions.push(
        tensors.map((t, i) => Float32Array.from(t, (_, j) => (i === k && j === index ? 1 : 0))),
      );
    }
    const eps = 1e-2;
    for (const d of directions) {
      const analytic = grads.reduce(
        (s, g, i) => s + g.reduce((a, v, j) => a + v * ((d[i] as Float32Array)[j] as number), 0),
        0,
      );
      shift(d, eps);
      const plus = await lossAt();
      shift(d, -2 * eps);
      const minus = await lossAt();
      shift(d, eps);
      const numeric = (plus - minus) / (2 * eps);
      expect(Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 1e-3)).toBeLessThan(5e-3);
    }
  });
});
