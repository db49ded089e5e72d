// Rotary frequencies as transformers' modeling_rope_utils.py computes them (in float32: every step is
// rounded with Math.fround so cos/sin match HF's to the last bit or one ulp). Rope types are a record,
// so adding one adds an entry, never a branch in the engine.
import { AppError } from "../../../src/errors.ts";

const f = Math.fround;

export interface Rope {
  /** [headDim / 2] */
  invFreq: Float32Array;
  /** Multiplies cos and sin (1 for default, linear and llama3). */
  attentionScaling: number;
}

type Scaling = Record<string, unknown>;

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

const ROPE_TYPES: Record<string, (inv: Float32Array, scaling: Scaling) => Float32Array> = {
  default: (inv) => inv,
  linear: (inv, scaling) => inv.map((freq) => f(freq / numberField(scaling, "factor"))),
  llama3,
};

export function ropeFromConfig(theta: number, headDim: number, scaling: Scaling | null | undefined): Rope {
  const type = String(scaling?.rope_type ?? scaling?.type ?? "default");
  const compute = ROPE_TYPES[type];
  if (!compute) {
    throw new AppError(
      "invalid_model",
      `config.json rope_scaling.rope_type: must be one of ${Object.keys(ROPE_TYPES).join(", ")}; got ${JSON.stringify(type)} (not supported)`,
    );
  }
  return { invFreq: compute(defaultInvFreq(theta, headDim), scaling ?? {}), attentionScaling: 1 };
}

/** Writes cos and sin ([headDim], HF's cat(freqs, freqs) layout) for one position at `offset`. */
export function writeCosSin(
  rope: Rope,
  position: number,
  cos: Float32Array,
  sin: Float32Array,
  offset: number,
): void {
  const half = rope.invFreq.length;
  for (let i = 0; i < half; i++) {
    const angle = f(position * (rope.invFreq[i] as number));
    const c = f(Math.cos(angle) * rope.attentionScaling);
    const s = f(Math.sin(angle) * rope.attentionScaling);
    cos[offset + i] = c;
    cos[offset + half + i] = c;
    sin[offset + i] = s;
    sin[offset + half + i] = s;
  }
}
