// A base model as far as adapters care: its linear modules and their shapes, derived from HF config.json.
// Architectures are records of facts, so adding one adds a record, never a branch.
import { z } from "zod";
import { canonicalJson, sha256Hex } from "../crypto.ts";
import { Sha256Schema } from "./digest.ts";
import { formatIssues, problemsError } from "./issues.ts";

const positiveInt = z.number().int().positive();
const tokenIds = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())], {
  error: "must be a token id or a list of token ids",
});

/** HF config.json: the fields we read. Loose, because every release adds keys we do not need. */
export const HfConfigSchema = z.looseObject({
  model_type: z.string().min(1),
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.nullish(),
  head_dim: positiveInt.nullish(),
  vocab_size: positiveInt,
  rms_norm_eps: z.number().positive().optional(),
  rope_theta: z.number().positive().optional(),
  rope_scaling: z.record(z.string(), z.unknown()).nullish(),
  /** transformers 5 writes rope_type, rope_theta and the scaling fields here instead. */
  rope_parameters: z.record(z.string(), z.unknown()).nullish(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  max_position_embeddings: positiveInt.optional(),
  torch_dtype: z.string().nullish(),
  /** transformers 5's name for torch_dtype. */
  dtype: z.string().nullish(),
  bos_token_id: tokenIds.nullish(),
  eos_token_id: tokenIds.nullish(),
});
export type HfConfig = z.infer<typeof HfConfigSchema>;

export const LINEAR_KINDS = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
  /** Phi-3's fused q, k and v (q then k then v along the outputs), as PEFT targets it. */
  "qkv_proj",
  /** Phi-3's fused gate and up (gate then up along the outputs). */
  "gate_up_proj",
] as const;
export type LinearKind = (typeof LINEAR_KINDS)[number];
export const ARCHITECTURES = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3"] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

export interface LinearModule {
  /** Full module path, e.g. "model.layers.0.self_attn.q_proj". */
  name: string;
  layer: number;
  kind: LinearKind;
  inFeatures: number;
  outFeatures: number;
  /** Whether the base linear carries a bias (Qwen2 q/k/v do). */
  bias?: boolean;
}

export interface BaseModelSpec {
  id: string;
  architecture: Architecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  fingerprint: string;
  modules: LinearModule[];
}

interface Dims {
  hidden: number;
  intermediate: number;
  q: number;
  kv: number;
}

interface LinearFacts {
  /** Sub-module holding it: "self_attn" or "mlp". */
  parent: "self_attn" | "mlp";
  shape: (d: Dims) => { inFeatures: number; outFeatures: number };
  bias: (config: HfConfig) => boolean;
}

const attentionBiasFlag = (c: HfConfig) => c.attention_bias ?? false;
const mlpBiasFlag = (c: HfConfig) => c.mlp_bias ?? false;
const never = () => false;
const always = () => true;

function linear(
  parent: LinearFacts["parent"],
  shape: LinearFacts["shape"],
  bias: LinearFacts["bias"],
): LinearFacts {
  return { parent, shape, bias };
}

const qShape = (d: Dims) => ({ inFeatures: d.hidden, outFeatures: d.q });
const kvShape = (d: Dims) => ({ inFeatures: d.hidden, outFeatures: d.kv });
const oShape = (d: Dims) => ({ inFeatures: d.q, outFeatures: d.hidden });
const upShape = (d: Dims) => ({ inFeatures: d.hidden, outFeatures: d.intermediate });
const downShape = (d: Dims) => ({ inFeatures: d.intermediate, outFeatures: d.hidden });
const qkvShape = (d: Dims) => ({ inFeatures: d.hidden, outFeatures: d.q + 2 * d.kv });
const gateUpShape = (d: Dims) => ({ inFeatures: d.hidden, outFeatures: 2 * d.intermediate });

/** The seven linears of a llama-shaped layer, attention biased as `attention_bias` says (qwen3, gemma2, gemma3). */
const SEVEN_ATTENTION_BIAS_FLAG: Partial<Record<LinearKind, LinearFacts>> = {
  q_proj: linear("self_attn", qShape, attentionBiasFlag),
  k_proj: linear("self_attn", kvShape, attentionBiasFlag),
  v_proj: linear("self_attn", kvShape, attentionBiasFlag),
  o_proj: linear("self_attn", oShape, attentionBiasFlag),
  gate_proj: linear("mlp", upShape, never),
  up_proj: linear("mlp", upShape, never),
  down_proj: linear("mlp", downShape, never),
};

/**
 * Per family: every linear in a decoder layer (the output head is never an adapter target) and its bias, in
 * the family's module order.
 */
const FAMILIES: Record<Architecture, Partial<Record<LinearKind, LinearFacts>>> = {
  llama: {
    q_proj: linear("self_attn", qShape, attentionBiasFlag),
    k_proj: linear("self_attn", kvShape, attentionBiasFlag),
    v_proj: linear("self_attn", kvShape, attentionBiasFlag),
    o_proj: linear("self_attn", oShape, attentionBiasFlag),
    gate_proj: linear("mlp", upShape, mlpBiasFlag),
    up_proj: linear("mlp", upShape, mlpBiasFlag),
    down_proj: linear("mlp", downShape, mlpBiasFlag),
  },
  mistral: {
    q_proj: linear("self_attn", qShape, never),
    k_proj: linear("self_attn", kvShape, never),
    v_proj: linear("self_attn", kvShape, never),
    o_proj: linear("self_attn", oShape, never),
    gate_proj: linear("mlp", upShape, never),
    up_proj: linear("mlp", upShape, never),
    down_proj: linear("mlp", downShape, never),
  },
  qwen2: {
    q_proj: linear("self_attn", qShape, always),
    k_proj: linear("self_attn", kvShape, always),
    v_proj: linear("self_attn", kvShape, always),
    o_proj: linear("self_attn", oShape, never),
    gate_proj: linear("mlp", upShape, never),
    up_proj: linear("mlp", upShape, never),
    down_proj: linear("mlp", downShape, never),
  },
  qwen3: SEVEN_ATTENTION_BIAS_FLAG,
  gemma2: SEVEN_ATTENTION_BIAS_FLAG,
  gemma3_text: SEVEN_ATTENTION_BIAS_FLAG,
  phi3: {
    qkv_proj: linear("self_attn", qkvShape, never),
    o_proj: linear("self_attn", oShape, never),
    gate_up_proj: linear("mlp", gateUpShape, never),
    down_proj: linear("mlp", downShape, never),
  },
};

/** The linear kinds of one decoder layer of the family, in its module order. */
export function familyLinears(arch: Architecture): LinearKind[] {
  return Object.keys(FAMILIES[arch]) as LinearKind[];
}

function isArchitecture(t: string): t is Architecture {
  return (ARCHITECTURES as readonly string[]).includes(t);
}

/** Head layout checks that the schema alone cannot express. */
function headProblems(c: HfConfig): string[] {
  const problems: string[] = [];
  const kv = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % kv !== 0) {
    problems.push(
      `num_key_value_heads: must divide num_attention_heads (${c.num_attention_heads}); got ${kv}`,
    );
  }
  if (c.head_dim == null && c.hidden_size % c.num_attention_heads !== 0) {
    problems.push(
      `hidden_size: must be a multiple of num_attention_heads (${c.num_attention_heads}) when head_dim is absent; got ${c.hidden_size}`,
    );
  }
  return problems;
}

function buildModules(arch: Architecture, c: HfConfig, d: Dims): LinearModule[] {
  const modules: LinearModule[] = [];
  const facts = FAMILIES[arch];
  for (let layer = 0; layer < c.num_hidden_layers; layer++) {
    for (const kind of familyLinears(arch)) {
      const f = facts[kind] as LinearFacts;
      const name = `model.layers.${layer}.${f.parent}.${kind}`;
      modules.push({ name, layer, kind, ...f.shape(d), bias: f.bias(c) });
    }
  }
  return modules;
}

function configProblems(config: unknown): { config: HfConfig | null; problems: string[] } {
  const parsed = HfConfigSchema.safeParse(config, { reportInput: true });
  const problems = parsed.success ? headProblems(parsed.data) : formatIssues(parsed.error);
  const modelType = (config as { model_type?: unknown } | null)?.model_type;
  if (typeof modelType === "string" && modelType !== "" && !isArchitecture(modelType)) {
    problems.unshift(
      `model_type: must be one of ${ARCHITECTURES.join(", ")}; got ${JSON.stringify(modelType)} (not supported)`,
    );
  }
  return { config: parsed.success ? parsed.data : null, problems };
}

/** Builds the spec from a parsed-or-not config.json; throws invalid_model naming every bad field. */
export async function baseModelSpecFromConfig(id: string, config: unknown): Promise<BaseModelSpec> {
  const { config: c, problems } = configProblems(config);
  if (c === null || problems.length > 0 || !isArchitecture(c.model_type)) {
    throw problemsError(
      "invalid_model",
      problems.map((p) => `base model "${id}" config.json: ${p}`),
    );
  }
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  const dims: Dims = {
    hidden: c.hidden_size,
    intermediate: c.intermediate_size,
    q: c.num_attention_heads * headDim,
    kv: numKvHeads * headDim,
  };
  const modules = buildModules(c.model_type, c, dims);
  const shape = {
    architecture: c.model_type,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    vocabSize: c.vocab_size,
  };
  const fingerprint = await sha256Hex(
    canonicalJson({ ...shape, modules: modules.map((m) => [m.name, m.inFeatures, m.outFeatures, m.bias]) }),
  );
  return { id, ...shape, fingerprint, modules };
}

export const LinearModuleSchema = z.strictObject({
  name: z.string().min(1),
  layer: z.number().int().nonnegative(),
  kind: z.enum(LINEAR_KINDS),
  inFeatures: positiveInt,
  outFeatures: positiveInt,
  bias: z.boolean().optional(),
});

/** The spec as stored (e.g. a JSON column in D1) and parsed back. */
export const BaseModelSpecSchema = z.strictObject({
  id: z.string().min(1),
  architecture: z.enum(ARCHITECTURES),
  hiddenSize: positiveInt,
  intermediateSize: positiveInt,
  numLayers: positiveInt,
  numHeads: positiveInt,
  numKvHeads: positiveInt,
  headDim: positiveInt,
  vocabSize: positiveInt,
  fingerprint: Sha256Schema,
  modules: z.array(LinearModuleSchema).min(1),
});

// Keeps the hand-written interface and the schema from drifting apart.
const _specMatches: z.infer<typeof BaseModelSpecSchema> extends BaseModelSpec
  ? BaseModelSpec extends z.infer<typeof BaseModelSpecSchema>
    ? true
    : false
  : false = true;
void _specMatches;

/** Finds a module by full name, e.g. "model.layers.0.self_attn.q_proj". */
export function moduleByName(spec: BaseModelSpec): Map<string, LinearModule> {
  return new Map(spec.modules.map((m) => [m.name, m]));
}
