// The per-step graph inputs besides weights and caches: token ids, rotary cos/sin and the additive mask.
// New tokens are left-padded to a common T, so every row's last token sits at position T-1, where the
// graph takes the logits. `past` is the cache capacity C the graph reads.
import { type Rope, writeCosSin } from "./model/rope.ts";

/** torch.finfo(float32).min, the value HF adds for masked positions: finite, so no row ever becomes NaN. */
const MASKED = -3.4028234663852886e38;

export interface RowPlan {
  tokens: number[];
  /** Validity of the used cache positions (cache positions past these are masked). */
  pastValid: Uint8Array;
  /** Real tokens already cached: the first new token's position. */
  position: number;
}

export interface StepInputs {
  seq: number;
  /** [B, T] */
  ids: BigInt64Array;
  /** [B, T, D] */
  cos: Float32Array;
  sin: Float32Array;
  /** [B, T, C + T] */
  bias: Float32Array;
  /** Per row, validity of the T new positions. */
  newValid: Uint8Array[];
}

function rowMask(
  plan: RowPlan,
  seq: number,
  past: number,
  newValid: Uint8Array,
  out: Float32Array,
  base: number,
): void {
  const total = past + seq;
  out.fill(MASKED, base, base + seq * total);
  for (let i = 0; i < seq; i++) {
    const rowBase = base + i * total;
    if (newValid[i] === 0) {
      // A padding query attends to itself only, so its softmax has one finite term.
      out[rowBase + past + i] = 0;
      continue;
    }
    for (let j = 0; j < plan.pastValid.length; j++) if (plan.pastValid[j] === 1) out[rowBase + j] = 0;
    for (let j = 0; j <= i; j++) if (newValid[j] === 1) out[rowBase + past + j] = 0;
  }
}

export function buildStepInputs(plans: RowPlan[], past: number, rope: Rope, headDim: number): StepInputs {
  const batch = plans.length;
  const seq = Math.max(...plans.map((p) => p.tokens.length));
  const ids = new BigInt64Array(batch * seq);
  const cos = new Float32Array(batch * seq * headDim);
  const sin = new Float32Array(batch * seq * headDim);
  const bias = new Float32Array(batch * seq * (past + seq));
  const newValid: Uint8Array[] = [];
  plans.forEach((plan, b) => {
    const pad = seq - plan.tokens.length;
    const valid = new Uint8Array(seq);
    valid.fill(1, pad);
    newValid.push(valid);
    for (let i = 0; i < seq; i++) {
      const real = i >= pad;
      ids[b * seq + i] = BigInt(real ? (plan.tokens[i - pad] as number) : 0);
      writeCosSin(rope, real ? plan.position + i - pad : 0, cos, sin, (b * seq + i) * headDim);
    }
    rowMask(plan, seq, past, valid, bias, b * seq * (past + seq));
  });
  return { seq, ids, cos, sin, bias, newValid };
}
