// The tiny model shapes of the HF reference fixtures (test/fixtures/make_hf_fixtures.py), plus a mistral in
// float16, generated here with seeded random weights so the engine tests need no fixtures; and the same three
// adapters.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type SyntheticAdapterOptions,
  type SyntheticModelOptions,
  writeSyntheticAdapter,
  writeSyntheticModel,
} from "../../scripts/bench/synthetic-model.ts";

const COMMON = {
  hiddenSize: 64,
  intermediateSize: 128,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  vocabSize: 256,
  maxPositions: 128,
} as const;

export const TINY_MODELS: Record<string, SyntheticModelOptions> = {
  "tiny-llama": { ...COMMON, architecture: "llama", seed: 11, dtype: "F32", ropeTheta: 10000 },
  "tiny-llama3": {
    ...COMMON,
    architecture: "llama",
    seed: 12,
    dtype: "BF16",
    headDim: 32,
    tieWordEmbeddings: true,
    ropeTheta: 500000,
    ropeScaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  },
  "tiny-mistral": { ...COMMON, architecture: "mistral", seed: 14, dtype: "F16", ropeTheta: 1e6 },
  "tiny-qwen2": {
    ...COMMON,
    architecture: "qwen2",
    seed: 13,
    dtype: "F32",
    tieWordEmbeddings: true,
    ropeTheta: 1e6,
  },
};

const ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

export const TINY_ADAPTERS: Record<string, SyntheticAdapterOptions> = {
  qv: { seed: 21, r: 8, alpha: 16, targetModules: ["q_proj", "v_proj"], std: 0.3 },
  all7: { seed: 22, r: 4, alpha: 8, targetModules: ALL7, useRslora: true, std: 0.3 },
  patterns: {
    seed: 23,
    r: 8,
    alpha: 8,
    targetModules: ["q_proj", "k_proj", "v_proj", "o_proj"],
    rankPattern: { k_proj: 4, "layers.1.self_attn.o_proj": 2 },
    alphaPattern: { v_proj: 32 },
    std: 0.3,
  },
};

/** Writes `<root>/<model>/` and `<root>/<model>/adapters/<adapter>/` for every tiny model; returns root. */
export function writeTinyModels(): string {
  const root = mkdtempSync(join(tmpdir(), "lora-edge-tiny-"));
  for (const [name, options] of Object.entries(TINY_MODELS)) {
    const dir = join(root, name);
    writeSyntheticModel(dir, options);
    for (const [adapter, a] of Object.entries(TINY_ADAPTERS))
      writeSyntheticAdapter(join(dir, "adapters", adapter), options, a);
  }
  return root;
}

/** Seeded prompt token ids (never 0, the padding id, so padding bugs cannot hide). */
export function prompt(length: number, seed: number, vocab = 256): number[] {
  return Array.from({ length }, (_, i) => 1 + ((seed * 7919 + i * 104729) % (vocab - 1)));
}
