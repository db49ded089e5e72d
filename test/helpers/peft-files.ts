// Builds PEFT-shaped adapters (adapter_config.json + adapter_model.safetensors) for tests, the way PEFT 0.21
// writes them: keys `base_model.model.<module>.lora_A.weight`, A: [r, in], B: [out, r].
import { type BaseModelSpec, baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { type PeftLoraConfig, PeftLoraConfigSchema } from "../../src/contracts/peft-config.ts";
import { type EffectiveModule, effectiveModules } from "../../src/adapters/peft.ts";
import { fromFloat32, type TensorToWrite, writeSafetensors } from "../../src/safetensors.ts";

/** A small llama config.json: hidden 64, intermediate 128, 2 layers, 4 heads (head_dim 16), 2 kv heads. */
export function demoSpecConfig(): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    vocab_size: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    max_position_embeddings: 512,
    hidden_act: "silu",
    torch_dtype: "float32",
    bos_token_id: 1,
    eos_token_id: 2,
  };
}

/** The BaseModelSpec of demoSpecConfig() (with `overrides` applied to the config). */
export function demoSpec(id = "demo-llama", overrides: Record<string, unknown> = {}): Promise<BaseModelSpec> {
  return baseModelSpecFromConfig(id, { ...demoSpecConfig(), ...overrides });
}

/** mulberry32: a tiny seeded PRNG, so adapters are reproducible across runs and machines. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uniform(random: () => number, n: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() * 2 - 1) * bound;
  return out;
}

export interface MakePeftAdapterOptions {
  spec: BaseModelSpec;
  /** target_modules: a list (exact names / suffixes), a regex string, or "all-linear". Default ["q_proj", "v_proj"]. */
  targets?: string[] | string;
  r?: number;
  alpha?: number;
  dtype?: "F32" | "F16" | "BF16";
  seed?: number;
  useRslora?: boolean;
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
  layersToTransform?: number | number[] | null;
  /** Write `.lora_A.default.weight` keys, as some tools do. */
  defaultSuffix?: boolean;
  /** Zero B, as PEFT initialises it: the adapter is then a no-op. Default: random B, so outputs change. */
  zeroB?: boolean;
  /** Extra or overriding adapter_config.json keys (e.g. use_dora: true to build a bad adapter). */
  config?: Record<string, unknown>;
}

export interface PeftAdapterFiles {
  /** The adapter_config.json object, PEFT 0.21-shaped (null-valued keys included). */
  config: Record<string, unknown>;
  /** The adapter_model.safetensors bytes. */
  safetensors: Uint8Array;
  /** The float32 values written, by tensor name (before dtype rounding). */
  tensors: Record<string, Float32Array>;
  /** The modules the config adapts, with their effective rank and scale. */
  modules: EffectiveModule[];
}

/** adapter_config.json as PEFT 0.21 saves it; `overrides` win. */
export function peftConfigJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: {
      base_model_class: "LlamaForCausalLM",
      parent_library: "transformers.models.llama.modeling_llama",
    },
    base_model_name_or_path: "demo-llama",
    bias: "none",
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    kasa_config: null,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: 16,
    lora_bias: false,
    lora_dropout: 0.05,
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    monteclora_config: null,
    peft_type: "LORA",
    peft_version: "0.21.0",
    qalora_group_size: 16,
    r: 8,
    rank_pattern: {},
    revision: null,
    target_modules: ["q_proj", "v_proj"],
    target_parameters: null,
    task_type: "CAUSAL_LM",
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: false,
    velora_config: null,
    ...overrides,
  };
}

/** Builds a PEFT adapter for `spec`. Deterministic in `seed`. */
export function makePeftAdapter(options: MakePeftAdapterOptions): PeftAdapterFiles {
  const config = peftConfigJson({
    base_model_name_or_path: options.spec.id,
    r: options.r ?? 8,
    lora_alpha: options.alpha ?? 16,
    target_modules: options.targets ?? ["q_proj", "v_proj"],
    use_rslora: options.useRslora ?? false,
    rank_pattern: options.rankPattern ?? {},
    alpha_pattern: options.alphaPattern ?? {},
    layers_to_transform: options.layersToTransform ?? null,
    ...options.config,
  });
  // Targeting is read from a parse of only the fields it needs, so a deliberately bad override
  // (use_dora, an unknown peft_type...) still yields a file.
  const parsed: PeftLoraConfig = PeftLoraConfigSchema.parse({
    ...peftConfigJson(),
    peft_type: "LORA",
    r: config.r,
    lora_alpha: config.lora_alpha,
    target_modules: config.target_modules,
    exclude_modules: config.exclude_modules,
    use_rslora: config.use_rslora,
    rank_pattern: config.rank_pattern,
    alpha_pattern: config.alpha_pattern,
    layers_to_transform: config.layers_to_transform,
    layers_pattern: config.layers_pattern,
  });
  const modules = effectiveModules(parsed, options.spec);
  const shapes = new Map(options.spec.modules.map((m) => [m.name, m]));
  const random = seededRandom(options.seed ?? 1);
  const dtype = options.dtype ?? "F32";
  const suffix = options.defaultSuffix ? ".default.weight" : ".weight";
  const tensors: Record<string, Float32Array> = {};
  const files: Record<string, TensorToWrite> = {};
  for (const m of modules) {
    const shape = shapes.get(m.module);
    if (shape === undefined) continue;
    // PEFT's A init is Kaiming-uniform(a=√5): bound 1/√in. B gets a similar scale instead of zeros.
    const a = uniform(random, m.rank * shape.inFeatures, 1 / Math.sqrt(shape.inFeatures));
    const b = options.zeroB
      ? new Float32Array(shape.outFeatures * m.rank)
      : uniform(random, shape.outFeatures * m.rank, 1 / Math.sqrt(m.rank));
    const keyA = `base_model.model.${m.module}.lora_A${suffix}`;
    const keyB = `base_model.model.${m.module}.lora_B${suffix}`;
    tensors[keyA] = a;
    tensors[keyB] = b;
    files[keyA] = { dtype, shape: [m.rank, shape.inFeatures], data: fromFloat32(dtype, a) };
    files[keyB] = { dtype, shape: [shape.outFeatures, m.rank], data: fromFloat32(dtype, b) };
  }
  return { config, safetensors: writeSafetensors(files), tensors, modules };
}
