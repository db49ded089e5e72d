// Rotary frequencies as transformers' modeling_rope_utils.py computes them (in float32: every step is
// rounded with Math.fround so cos/sin match HF's to the last bit or one ulp). Rope types are a record,
// so adding one adds an entry, never a branch in the engine.
import { AppError } from "../../../src/errors.ts";

const f = Math.fround;

export interface Rope {
  /** [rotaryDim / 2]: rotaryDim is the head size, or its leading part under partial rotary. */
  invFreq: Float32Array;
  /** Multiplies cos and sin (1 for default, linear and llama3; LongRoPE's attention factor). */
  attentionScaling: number;
  /**
   * LongRoPE: the frequencies for a sequence longer than `afterPositions` (its original context). HF picks
   * them per forward pass from the longest position it holds; the engine picks them per row and step.
   */
  long?: { invFreq: Float32Array; afterPositions: number };
}

type Scaling = Record<string, unknown>;

/** What some rope types read from config.json besides rope_scaling. */
export interface RopeContext {
  maxPositions: number;
  /** config.json's top-level original_max_position_embeddings (Phi-3 writes it there). */
  originalMaxPositions?: number;
}

interface RopeParts {
  invFreq: Float32Array;
  attentionScaling?: number;
  long?: Rope["long"];
}

function defaultInvFreq(theta: number, headDim: number): Float32Array {
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < out.length; i++) out[i] = f(1 / f(theta ** f((2 * i) / headDim)));
  return out;
}

function numberField(scaling: Scaling, key: string): number {
  const value = scaling[key];
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new AppError(
      "invalid_model",
      `config.json rope_scaling.${key}: must be a number; got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function factorList(scaling: Scaling, key: string, length: number): Float32Array {
  const value = scaling[key];
  if (!Array.isArray(value) || value.length !== length || !value.every((v) => typeof v === "number")) {
    throw new AppError(
      "invalid_model",
      `config.json rope_scaling.${key}: must be a list of ${length} numbers (rotary dims / 2); got ${JSON.stringify(value)}`,
    );
  }
  return Float32Array.from(value as number[]);
}

/**
 * _compute_longrope_parameters: inv_freq = 1 / (factor_i · theta^(2i/dim)), short factors up to the original
 * context and long ones past it, cos and sin scaled by sqrt(1 + ln(factor) / ln(original)).
 */
function longrope(theta: number, dim: number, scaling: Scaling, context: RopeContext): RopeParts {
  const originalValue = scaling.original_max_position_embeddings ?? context.originalMaxPositions;
  if (typeof originalValue !== "number" || !Number.isInteger(originalValue) || originalValue < 1) {
    throw new AppError(
      "invalid_model",
      `config.json rope_scaling.original_max_position_embeddings: must be an integer >= 1 for longrope; got ${JSON.stringify(originalValue)}`,
    );
  }
  const original = originalValue;
  const factor =
    scaling.factor === undefined || scaling.factor === null
      ? context.maxPositions / original
      : numberField(scaling, "factor");
  const attention =
    scaling.attention_factor === undefined || scaling.attention_factor === null
      ? factor <= 1
        ? 1
        : Math.sqrt(1 + Math.log(factor) / Math.log(original))
      : numberField(scaling, "attention_factor");
  const frequencies = (key: string) => {
    const ext = factorList(scaling, key, dim / 2);
    return ext.map((e, i) => f(1 / f(e * f(theta ** f((2 * i) / dim)))));
  };
  return {
    invFreq: frequencies("short_factor"),
    attentionScaling: attention,
    long: { invFreq: frequencies("long_factor"), afterPositions: original },
  };
}

/** _compute_llama3_parameters: low frequencies divided by `factor`, a smooth blend in between. */
function llama3(inv: Float32Array, scaling: Scaling): Float32Array {
  const factor = numberField(scaling, "factor");
  const low = numberField(scaling, "low_freq_factor");
  const high = numberField(scaling, "high_freq_factor");
  const oldContext = numberField(scaling, "original_max_position_embeddings");
  const lowWavelen = oldContext / low;
  const highWavelen = oldContext / high;
  return inv.map((freq) => {
    const wavelen = f((2 * Math.PI) / freq);
    const scaled = wavelen > lowWavelen ? f(freq / factor) : freq;
    if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
    const smooth = f(f(f(oldContext / wavelen) - low) / (high - low));
    return f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
  });
}

type RopeType = (theta: number, dim: number, scaling: Scaling, context: RopeContext) => RopeParts;

/** Rope types that rescale the default frequencies. */
const scaled =
  (scale: (inv: Float32Array, scaling: Scaling) => Float32Array): RopeType =>
  (theta, dim, scaling) => ({ invFreq: scale(defaultInvFreq(theta, dim), scaling) });

const ROPE_TYPES: Record<string, RopeType> = {
  default: scaled((inv) => inv),
  linear: scaled((inv, scaling) => inv.map((freq) => f(freq / numberField(scaling, "factor")))),
  llama3: scaled(llama3),
  longrope,
  // Phi-3's first 128k configs named LongRoPE "su"; transformers reads it as longrope.
  su: longrope,
};

/** `dim` is the rotary size: the head size, or its leading part under partial rotary. */
export function ropeFromConfig(
  theta: number,
  dim: number,
  scaling: Scaling | null | undefined,
  context: RopeContext = { maxPositions: 0 },
): Rope {
  const type = String(scaling?.rope_type ?? scaling?.type ?? "default");
  const compute = ROPE_TYPES[type];
  if (!compute) {
    throw new AppError(
      "invalid_model",
      `config.json rope_scaling.rope_type: must be one of ${Object.keys(ROPE_TYPES).join(", ")}; got ${JSON.stringify(type)} (not supported)`,
    );
  }
  const parts = compute(theta, dim, scaling ?? {}, context);
  return {
    invFreq: parts.invFreq,
    attentionScaling: parts.attentionScaling ?? 1,
    ...(parts.long ? { long: parts.long } : {}),
  };
}

/** Whether a row whose step ends at `endPosition` (exclusive) reads LongRoPE's long frequencies. */
export function usesLongFrequencies(rope: Rope, endPosition: number): boolean {
  return rope.long !== undefined && endPosition > rope.long.afterPositions;
}

/**
 * Writes cos and sin ([rotaryDim], HF's cat(freqs, freqs) layout) for one position at `offset`; `long` picks
 * LongRoPE's long frequencies (see `usesLongFrequencies`).
 */
export function writeCosSin(
  rope: Rope,
  position: number,
  cos: Float32Array,
  sin: Float32Array,
  offset: number,
  long = false,
): void {
  const inv = long && rope.long ? rope.long.invFreq : rope.invFreq;
  const half = inv.length;
  // HF scales in float32: cos() rounded, then times the factor rounded to float32 (a no-op at 1).
  const scale = f(rope.attentionScaling);
  for (let i = 0; i < half; i++) {
    const angle = f(position * (inv[i] as number));
    const c = f(f(Math.cos(angle)) * scale);
    const s = f(f(Math.sin(angle)) * scale);
    cos[offset + i] = c;
    cos[offset + half + i] = c;
    sin[offset + i] = s;
    sin[offset + half + i] = s;
  }
}
