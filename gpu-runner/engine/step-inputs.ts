// The per-step graph inputs besides weights and caches: token ids, rotary cos/sin per rope table and the
// additive masks (full causal, and sliding-window for layers that slide). New tokens are left-padded to a
// common T, so every row's last token sits at position T-1, where the graph takes the logits. `past` is the
// cache capacity C the graph reads.
import { type Rope, usesLongFrequencies, writeCosSin } from "./model/rope.ts";
import type { LayerKind } from "./onnx/llama-decoder.ts";

/** torch.finfo(float32).min, the value HF adds for masked positions: finite, so no row ever becomes NaN. */
const MASKED = -3.4028234663852886e38;

export interface RowPlan {
  tokens: number[];
  /** Validity of the used cache positions (cache positions past these are masked). */
  pastValid: Uint8Array;
  /** Real tokens already cached: the first new token's position. */
  position: number;
}

/** What the graph reads besides tokens: its rope tables, rotary width and masks (llama-decoder.ts `stepInputsOf`). */
export interface StepGeometry {
  /** By table index; `tables` says which ones the graph reads. */
  ropes: readonly Rope[];
  tables: readonly number[];
  rotaryDim: number;
  masks: readonly LayerKind[];
  /** The window of sliding layers (a query sees the keys less than `window` positions back), or null. */
  window: number | null;
}

export interface StepInputs {
  seq: number;
  /** [B, T] */
  ids: BigInt64Array;
  /** Per rope table the graph reads, [B, T, rotaryDim]. */
  cos: Map<number, Float32Array>;
  sin: Map<number, Float32Array>;
  /** Per mask the graph reads, [B, T, C + T]. */
  masks: Map<LayerKind, Float32Array>;
  /** Per row, validity of the T new positions. */
  newValid: Uint8Array[];
}

/**
 * One row's mask. A cache position's token position is the count of valid positions before it (the cache
 * keeps a row's tokens in order, padding between them masked), so a window needs no positions stored.
 * HF's sliding window (masking_utils `sliding_window_overlay`): key k is visible to query q when k > q - window.
 */
function rowMask(
  plan: RowPlan,
  seq: number,
  past: number,
  newValid: Uint8Array,
  window: number | null,
  out: Float32Array,
  base: number,
): void {
  const total = past + seq;
  const pad = seq - plan.tokens.length;
  out.fill(MASKED, base, base + seq * total);
  for (let i = 0; i < seq; i++) {
    const rowBase = base + i * total;
    if (newValid[i] === 0) {
      // A padding query attends to itself only, so its softmax has one finite term.
      out[rowBase + past + i] = 0;
      continue;
    }
    const first = window === null ? 0 : plan.position + i - pad - window + 1;
    let position = 0;
    for (let j = 0; j < plan.pastValid.length; j++) {
      if (plan.pastValid[j] !== 1) continue;
      if (position >= first) out[rowBase + j] = 0;
      position++;
    }
    for (let j = 0; j <= i; j++) {
      if (newValid[j] === 1 && plan.position + j - pad >= first) out[rowBase + past + j] = 0;
    }
  }
}

export function buildStepInputs(plans: RowPlan[], past: number, geometry: StepGeometry): StepInputs {
  const batch = plans.length;
  const dim = geometry.rotaryDim;
  const seq = Math.max(...plans.map((p) => p.tokens.length));
  const ids = new BigInt64Array(batch * seq);
  const cos = new Map(geometry.tables.map((t) => [t, new Float32Array(batch * seq * dim)] as const));
  const sin = new Map(geometry.tables.map((t) => [t, new Float32Array(batch * seq * dim)] as const));
  const masks = new Map(
    geometry.masks.map((k) => [k, new Float32Array(batch * seq * (past + seq))] as const),
  );
  const newValid: Uint8Array[] = [];
  plans.forEach((plan, b) => {
    const pad = seq - plan.tokens.length;
    const valid = new Uint8Array(seq);
    valid.fill(1, pad);
    newValid.push(valid);
    const end = plan.position + plan.tokens.length;
    for (let i = 0; i < seq; i++) {
      const real = i >= pad;
      ids[b * seq + i] = BigInt(real ? (plan.tokens[i - pad] as number) : 0);
      for (const t of geometry.tables) {
        const rope = geometry.ropes[t] as Rope;
        const position = real ? plan.position + i - pad : 0;
        const offset = (b * seq + i) * dim;
        writeCosSin(
          rope,
          position,
          cos.get(t) as Float32Array,
          sin.get(t) as Float32Array,
          offset,
          usesLongFrequencies(rope, end),
        );
      }
    }
    for (const [kind, mask] of masks) {
      const window = kind === "sliding" ? geometry.window : null;
      rowMask(plan, seq, past, valid, window, mask, b * seq * (past + seq));
    }
  });
  return { seq, ids, cos, sin, masks, newValid };
}
