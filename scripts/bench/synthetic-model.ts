// Seeded random llama-family models and PEFT LoRA adapters in Hugging Face's on-disk format, for the runner
// benchmark and the engine tests (any shape, llama/mistral/qwen2, f32/bf16/f16, sharded or not).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { type Dtype, fromFloat32, type TensorToWrite, writeSafetensors } from "../../src/safetensors.ts";

export interface SyntheticModelOptions {
  architecture: "llama" | "mistral" | "qwen2";
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** Written to config.json when set (it may differ from hidden / heads). */
  headDim?: number;
  vocabSize: number;
  maxPositions: number;
  seed: number;
  dtype?: "F32" | "BF16" | "F16";
  tieWordEmbeddings?: boolean;
  ropeTheta?: number;
  ropeScaling?: Record<string, unknown> | null;
  /** Standard deviation of linear weights; large enough that logits differ clearly. */
  std?: number;
  /** Split the weights over this many files with an index (default 1: model.safetensors). */
  shards?: number;
  eosTokenId?: number;
  /** More config.json fields (e.g. mistral's sliding_window). */
  extraConfig?: Record<string, unknown>;
}

/** mulberry32: tiny, seeded, fast enough for a billion weights. */
function uniformRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Seeded values, uniform with mean `mean` and standard deviation `std` (the shape of the noise is immaterial here). */
export function seededValues(next: () => number, n: number, mean: number, std: number): Float32Array {
  const out = new Float32Array(n);
  const half = Math.sqrt(3) * std;
  for (let i = 0; i < n; i++) out[i] = mean + half * (2 * next() - 1);
  return out;
}

/** Float32 → the dtype's little-endian bytes; BF16 rounds to nearest even without a per-value DataView. */
function encode(dtype: Dtype, values: Float32Array): Uint8Array {
  if (dtype === "F32") return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (dtype !== "BF16") return fromFloat32(dtype as "F16", values);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i] as number;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

function headDimOf(o: SyntheticModelOptions): number {
  return o.headDim ?? o.hiddenSize / o.numHeads;
}

/** Tensor name → [shape, kind]; linears are [out, in] as PyTorch stores them. */
export function syntheticShapes(o: SyntheticModelOptions): [string, number[], "norm" | "linear"][] {
  const h = o.hiddenSize;
  const q = o.numHeads * headDimOf(o);
  const kv = o.numKvHeads * headDimOf(o);
  const out: [string, number[], "norm" | "linear"][] = [
    ["model.embed_tokens.weight", [o.vocabSize, h], "linear"],
  ];
  for (let l = 0; l < o.numLayers; l++) {
    const p = `model.layers.${l}`;
    out.push(
      [`${p}.input_layernorm.weight`, [h], "norm"],
      [`${p}.post_attention_layernorm.weight`, [h], "norm"],
    );
    out.push(
      [`${p}.self_attn.q_proj.weight`, [q, h], "linear"],
      [`${p}.self_attn.k_proj.weight`, [kv, h], "linear"],
    );
    out.push(
      [`${p}.self_attn.v_proj.weight`, [kv, h], "linear"],
      [`${p}.self_attn.o_proj.weight`, [h, q], "linear"],
    );
    if (o.architecture === "qwen2") {
      out.push([`${p}.self_attn.q_proj.bias`, [q], "linear"], [`${p}.self_attn.k_proj.bias`, [kv], "linear"]);
      out.push([`${p}.self_attn.v_proj.bias`, [kv], "linear"]);
    }
    out.push([`${p}.mlp.gate_proj.weight`, [o.intermediateSize, h], "linear"]);
    out.push([`${p}.mlp.up_proj.weight`, [o.intermediateSize, h], "linear"]);
    out.push([`${p}.mlp.down_proj.weight`, [h, o.intermediateSize], "linear"]);
  }
  out.push(["model.norm.weight", [h], "norm"]);
  if (!o.tieWordEmbeddings) out.push(["lm_head.weight", [o.vocabSize, h], "linear"]);
  return out;
}

function configJson(o: SyntheticModelOptions): Record<string, unknown> {
  const torchDtype = { F32: "float32", BF16: "bfloat16", F16: "float16" }[o.dtype ?? "F32"];
  return {
    architectures: [
      { llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM" }[o.architecture],
    ],
    model_type: o.architecture,
    hidden_size: o.hiddenSize,
    intermediate_size: o.intermediateSize,
    num_hidden_layers: o.numLayers,
    num_attention_heads: o.numHeads,
    num_key_value_heads: o.numKvHeads,
    ...(o.headDim ? { head_dim: o.headDim } : {}),
    hidden_act: "silu",
    max_position_embeddings: o.maxPositions,
    rms_norm_eps: 1e-6,
    rope_theta: o.ropeTheta ?? 10000,
    rope_scaling: o.ropeScaling ?? null,
    tie_word_embeddings: o.tieWordEmbeddings ?? false,
    vocab_size: o.vocabSize,
    bos_token_id: 1,
    eos_token_id: o.eosTokenId ?? 2,
    torch_dtype: torchDtype,
    ...o.extraConfig,
  };
}

export function writeSyntheticModel(dir: string, o: SyntheticModelOptions): void {
  mkdirSync(dir, { recursive: true });
  const next = uniformRng(o.seed);
  const std = o.std ?? 0.1;
  const dtype: Dtype = o.dtype ?? "F32";
  const shapes = syntheticShapes(o);
  const shards = o.shards ?? 1;
  const files: Record<string, TensorToWrite>[] = Array.from({ length: shards }, () => ({}));
  shapes.forEach(([name, shape, kind], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = kind === "norm" ? seededValues(next, n, 1, 0.1) : seededValues(next, n, 0, std);
    (files[i % shards] as Record<string, TensorToWrite>)[name] = {
      dtype,
      shape,
      data: encode(dtype, values),
    };
  });
  if (shards === 1)
    writeFileSync(
      join(dir, "model.safetensors"),
      writeSafetensors(files[0] as Record<string, TensorToWrite>),
    );
  else {
    const weightMap: Record<string, string> = {};
    files.forEach((tensors, k) => {
      const file = `model-${String(k + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
      writeFileSync(join(dir, file), writeSafetensors(tensors));
      for (const name of Object.keys(tensors)) weightMap[name] = file;
    });
    writeFileSync(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
  }
  writeFileSync(join(dir, "config.json"), JSON.stringify(configJson(o), null, 2));
  writeFileSync(
    join(dir, "generation_config.json"),
    JSON.stringify({ bos_token_id: 1, eos_token_id: o.eosTokenId ?? 2 }),
  );
}

export interface SyntheticAdapterOptions {
  seed: number;
  r: number;
  alpha: number;
  targetModules: string[];
  useRslora?: boolean;
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
  std?: number;
}

/** A PEFT adapter with non-zero A and B, named and shaped as PEFT's save_pretrained writes them. */
export function writeSyntheticAdapter(
  dir: string,
  model: SyntheticModelOptions,
  o: SyntheticAdapterOptions,
): void {
  mkdirSync(dir, { recursive: true });
  const next = uniformRng(o.seed);
  const std = o.std ?? 0.1;
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, shape] of syntheticShapes(model)) {
    const module = name.replace(/\.weight$/, "");
    if (!name.endsWith(".weight") || !o.targetModules.some((t) => module.endsWith(`.${t}`))) continue;
    const rankKey = Object.keys(o.rankPattern ?? {}).find((k) =>
      new RegExp(`^(?:.*\\.)?(?:${k})$`).test(module),
    );
    const r = rankKey ? (o.rankPattern?.[rankKey] as number) : o.r;
    const [outFeatures, inFeatures] = shape as [number, number];
    const a = seededValues(next, r * inFeatures, 0, std);
    const b = seededValues(next, outFeatures * r, 0, std);
    tensors[`base_model.model.${module}.lora_A.weight`] = {
      dtype: "F32",
      shape: [r, inFeatures],
      data: fromFloat32("F32", a),
    };
    tensors[`base_model.model.${module}.lora_B.weight`] = {
      dtype: "F32",
      shape: [outFeatures, r],
      data: fromFloat32("F32", b),
    };
  }
  writeFileSync(join(dir, PEFT_WEIGHTS_FILE), writeSafetensors(tensors));
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    r: o.r,
    lora_alpha: o.alpha,
    lora_dropout: 0,
    target_modules: o.targetModules,
    bias: "none",
    use_rslora: o.useRslora ?? false,
    use_dora: false,
    fan_in_fan_out: false,
    init_lora_weights: true,
    modules_to_save: null,
    rank_pattern: o.rankPattern ?? {},
    alpha_pattern: o.alphaPattern ?? {},
  };
  writeFileSync(join(dir, PEFT_CONFIG_FILE), JSON.stringify(config, null, 2));
}
