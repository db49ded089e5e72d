// What differs between the model families we serve, as records of facts and functions.
// Shared code asks the record; adding a family adds an entry here and touches nothing else.
// Each family's math follows its transformers modeling file (decoder details: onnx/llama-decoder.ts
// `DecoderMath`); a config.json field that would change that math and is not read here is refused by name.
import { z } from "zod";
import type { Architecture, HfConfig } from "../../../src/contracts/base-model.ts";
import { formatIssues } from "../../../src/contracts/issues.ts";
import { AppError } from "../../../src/errors.ts";
import type { GraphBuilder } from "../onnx/graph-builder.ts";
import {
  buildLlamaDecoder,
  type DecoderMath,
  type DecoderOptions,
  type DecoderSpec,
  type LayerKind,
  llamaMath,
  type WeightSource,
} from "../onnx/llama-decoder.ts";

/** The config.json fields the families beyond llama read. Loose: transformers owns the file. */
const FamilyConfigSchema = z.looseObject({
  layer_types: z.array(z.string()).nullish(),
  sliding_window: z.number().int().positive().nullish(),
  use_sliding_window: z.boolean().nullish(),
  max_window_layers: z.number().int().nonnegative().nullish(),
  sliding_window_pattern: z.number().int().positive().nullish(),
  query_pre_attn_scalar: z.number().positive().nullish(),
  attn_logit_softcapping: z.number().positive().nullish(),
  final_logit_softcapping: z.number().positive().nullish(),
  hidden_act: z.string().nullish(),
  hidden_activation: z.string().nullish(),
  partial_rotary_factor: z.number().positive().max(1).nullish(),
  original_max_position_embeddings: z.number().int().positive().nullish(),
  rope_local_base_freq: z.number().positive().nullish(),
  use_bidirectional_attention: z.boolean().nullish(),
});
export type FamilyConfig = z.infer<typeof FamilyConfigSchema>;

export interface Sizes {
  numLayers: number;
  headDim: number;
  hiddenSize: number;
}

export interface ArchitectureFacts {
  /** transformers' config class defaults for fields a config.json may omit. */
  defaults: { rmsNormEps: number; ropeTheta: number; tieWordEmbeddings: boolean };
  /**
   * Whether the fused graph (onnx/fused-decoder.ts) computes this family's math: it has the llama shape's
   * ops only, so the other families run on the primitive graph.
   */
  fusedGraph: boolean;
  /** Per-layer norm weights besides input_layernorm (gemma adds pre/post_feedforward_layernorm). */
  layerNorms: readonly string[];
  /** The family's math; throws invalid_model naming a config field it cannot honour. */
  math(config: FamilyConfig, sizes: Sizes): DecoderMath;
  buildGraph(spec: DecoderSpec, weights: WeightSource, options: DecoderOptions): GraphBuilder;
}

const LAYER_TYPES: Record<string, LayerKind> = { full_attention: "full", sliding_attention: "sliding" };

function refuse(field: string, rule: string, value: unknown): AppError {
  return new AppError(
    "invalid_model",
    `config.json ${field}: ${rule}; got ${JSON.stringify(value)} (not supported)`,
  );
}

/** `layer_types` as written (transformers 4.53+), else the family's rule for older configs. */
function layerKinds(c: FamilyConfig, numLayers: number, fallback: (layer: number) => LayerKind): LayerKind[] {
  const kinds = c.layer_types
    ? c.layer_types.map((t, i) => {
        const kind = LAYER_TYPES[t];
        if (!kind) {
          throw refuse(`layer_types[${i}]`, `must be one of ${Object.keys(LAYER_TYPES).join(", ")}`, t);
        }
        return kind;
      })
    : Array.from({ length: numLayers }, (_, layer) => fallback(layer));
  if (kinds.length !== numLayers) {
    throw refuse("layer_types", `must have num_hidden_layers (${numLayers}) entries`, c.layer_types);
  }
  return kinds;
}

/** The window of sliding layers; sliding layers without one are a config mistake. */
function windowOf(c: FamilyConfig, kinds: LayerKind[]): number | null {
  if (!kinds.includes("sliding")) return null;
  if (!c.sliding_window) {
    throw refuse(
      "sliding_window",
      "must be an integer >= 1 when layer_types has sliding_attention",
      c.sliding_window,
    );
  }
  return c.sliding_window;
}

function activationOf(
  c: FamilyConfig,
  allowed: string,
  field: "hidden_act" | "hidden_activation",
): "silu" | "gelu_tanh" {
  // Gemma reads hidden_activation (hidden_act is the older name); the others read hidden_act.
  const value = field === "hidden_activation" ? (c.hidden_activation ?? c.hidden_act) : c.hidden_act;
  if (value !== undefined && value !== null && value !== allowed) {
    throw refuse(field, `must be ${JSON.stringify(allowed)} for this model_type`, value);
  }
  return allowed === "silu" ? "silu" : "gelu_tanh";
}

/** Leading head dims that rotary turns: int(head_dim · partial_rotary_factor), as HF truncates it. */
function rotaryDimOf(c: FamilyConfig, rope: Record<string, unknown> | null, headDim: number): number {
  const factor = rope?.partial_rotary_factor ?? c.partial_rotary_factor ?? 1;
  if (typeof factor !== "number" || !(factor > 0 && factor <= 1)) {
    throw refuse("partial_rotary_factor", "must be a number in (0, 1]", factor);
  }
  const dim = Math.trunc(headDim * factor);
  if (dim < 2 || dim % 2 !== 0) {
    throw refuse(
      "partial_rotary_factor",
      `must turn an even number >= 2 of the ${headDim} head dims`,
      factor,
    );
  }
  return dim;
}

function flatRopeParameters(c: FamilyConfig): Record<string, unknown> | null {
  const params = (c as { rope_parameters?: unknown }).rope_parameters;
  return typeof params === "object" && params !== null && !Array.isArray(params)
    ? (params as Record<string, unknown>)
    : null;
}

function llamaShaped(
  c: FamilyConfig,
  s: Sizes,
  fallback: (layer: number) => LayerKind,
  extra: Partial<DecoderMath> = {},
): DecoderMath {
  const kinds = layerKinds(c, s.numLayers, fallback);
  return {
    ...llamaMath(s.numLayers, s.headDim),
    activation: activationOf(c, "silu", "hidden_act"),
    layerKinds: kinds,
    slidingWindow: windowOf(c, kinds),
    ...extra,
  };
}

const allFull = (): LayerKind => "full";
/** Mistral and Phi-3 slide on every layer when sliding_window is set. */
const everyLayerIfWindow = (c: FamilyConfig) => (): LayerKind => (c.sliding_window ? "sliding" : "full");
/** Qwen2/Qwen3 slide from max_window_layers on, and only with use_sliding_window. */
const qwenLayers =
  (c: FamilyConfig) =>
  (layer: number): LayerKind =>
    c.use_sliding_window === true && c.sliding_window && layer >= (c.max_window_layers ?? 28)
      ? "sliding"
      : "full";

/** Gemma 2 and 3: GeGLU, (1 + w) norms around both blocks, √hidden embeddings, query_pre_attn_scalar. */
function gemmaMath(
  c: FamilyConfig,
  s: Sizes,
  fallback: (layer: number) => LayerKind,
  capDefaults: { attn: number | null; final: number | null },
  extra: Partial<DecoderMath>,
): DecoderMath {
  if (c.use_bidirectional_attention === true) {
    throw refuse("use_bidirectional_attention", "must be false (causal decoding)", true);
  }
  const kinds = layerKinds(c, s.numLayers, fallback);
  // undefined: the config class default applies; null: switched off.
  const cap = (value: number | null | undefined, fallbackCap: number | null) =>
    value === undefined ? fallbackCap : value;
  return {
    normPlusOne: true,
    sandwichNorms: true,
    qkNorm: false,
    embedScale: Math.fround(Math.sqrt(s.hiddenSize)),
    activation: activationOf(c, "gelu_pytorch_tanh", "hidden_activation"),
    attentionScale: (c.query_pre_attn_scalar ?? 256) ** -0.5,
    attnSoftcap: cap(c.attn_logit_softcapping, capDefaults.attn),
    finalSoftcap: cap(c.final_logit_softcapping, capDefaults.final),
    rotaryDim: s.headDim,
    layerKinds: kinds,
    slidingWindow: windowOf(c, kinds),
    layerRope: kinds.map(() => 0),
    ...extra,
  };
}

const GEMMA_NORMS = ["post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"];
const LLAMA_NORMS = ["post_attention_layernorm"];

export const ARCHITECTURE_FACTS: Record<Architecture, ArchitectureFacts> = {
  llama: {
    defaults: { rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false },
    fusedGraph: true,
    layerNorms: LLAMA_NORMS,
    // Llama has no sliding window: HF ignores a sliding_window field in its config.
    math: (c, s) => llamaShaped({ ...c, layer_types: null }, s, allFull),
    buildGraph: buildLlamaDecoder,
  },
  mistral: {
    defaults: { rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false },
    fusedGraph: true,
    layerNorms: LLAMA_NORMS,
    math: (c, s) => llamaShaped(c, s, everyLayerIfWindow(c)),
    buildGraph: buildLlamaDecoder,
  },
  qwen2: {
    defaults: { rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false },
    fusedGraph: true,
    layerNorms: LLAMA_NORMS,
    math: (c, s) => llamaShaped(c, s, qwenLayers(c)),
    buildGraph: buildLlamaDecoder,
  },
  qwen3: {
    defaults: { rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false },
    fusedGraph: false,
    layerNorms: LLAMA_NORMS,
    math: (c, s) => llamaShaped(c, s, qwenLayers(c), { qkNorm: true }),
    buildGraph: buildLlamaDecoder,
  },
  gemma2: {
    defaults: { rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true },
    fusedGraph: false,
    layerNorms: GEMMA_NORMS,
    // Even layers slide: transformers' `bool((i + 1) % 2)`.
    math: (c, s) =>
      gemmaMath(c, s, (layer) => ((layer + 1) % 2 ? "sliding" : "full"), { attn: 50, final: 30 }, {}),
    buildGraph: buildLlamaDecoder,
  },
  gemma3_text: {
    defaults: { rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: true },
    fusedGraph: false,
    layerNorms: GEMMA_NORMS,
    math: (c, s) => {
      const pattern = c.sliding_window_pattern ?? 6;
      const fallback = (layer: number): LayerKind => ((layer + 1) % pattern ? "sliding" : "full");
      const kinds = layerKinds(c, s.numLayers, fallback);
      // Local layers read their own rope table (rope_local_base_freq): table 1.
      return gemmaMath(
        c,
        s,
        fallback,
        { attn: null, final: null },
        {
          qkNorm: true,
          layerRope: kinds.map((k) => (k === "sliding" ? 1 : 0)),
        },
      );
    },
    buildGraph: buildLlamaDecoder,
  },
  phi3: {
    defaults: { rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: false },
    fusedGraph: false,
    layerNorms: LLAMA_NORMS,
    math: (c, s) =>
      llamaShaped(c, s, everyLayerIfWindow(c), {
        rotaryDim: rotaryDimOf(c, flatRopeParameters(c), s.headDim),
      }),
    buildGraph: buildLlamaDecoder,
  },
};

/** Parses the family fields of config.json; throws invalid_model naming each bad one. */
export function familyConfig(config: HfConfig, dir: string): FamilyConfig {
  const parsed = FamilyConfigSchema.safeParse(config, { reportInput: true });
  if (!parsed.success) {
    const problems = formatIssues(parsed.error).map((p) => `config.json ${p}`);
    throw new AppError("invalid_model", `${dir}: ${problems[0]}`, { details: problems });
  }
  return parsed.data;
}

/** The longest sequence on which full causal attention equals the model's (the shortest window, if any). */
export function fullAttentionPositions(math: DecoderMath, maxPositions: number): number {
  return math.slidingWindow === null ? maxPositions : Math.min(maxPositions, math.slidingWindow);
}
