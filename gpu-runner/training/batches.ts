// Token rows → the training graph's feeds. A row is its tokens plus which of them are targets (completion
// tokens, or all of them); position t predicts token t+1 with weight 1/N, N the number of targets in the
// whole optimizer step, so accumulated micro-batches sum to the mean loss over the step's targets.

export interface TokenRow {
  tokens: number[];
  /** target[i]: token i counts in the loss (predicted from tokens before it). target[0] is ignored. */
  target: boolean[];
}

export interface Feeds {
  batch: number;
  seq: number;
  inputIds: BigInt64Array;
  targets: BigInt64Array;
  lossWeights: Float32Array;
  /** Targets in this micro-batch (the loss weights' non-zero count). */
  targetCount: number;
  /** Real (non-padding) tokens in this micro-batch. */
  tokenCount: number;
}

export function countTargets(rows: TokenRow[]): number {
  return rows.reduce((n, r) => n + r.target.filter((t, i) => t && i > 0).length, 0);
}

/** The padded length for `longest` tokens: a multiple of `step`, so sessions are reused across batches. */
export function bucketLength(longest: number, step = 16): number {
  return Math.max(step, Math.ceil(longest / step) * step);
}

/** Rows right-padded with `padId` to `seq`; missing rows (a short last batch) are all padding, weight 0. */
export function makeFeeds(
  rows: TokenRow[],
  batch: number,
  seq: number,
  weightPerTarget: number,
  padId = 0,
): Feeds {
  const inputIds = new BigInt64Array(batch * seq).fill(BigInt(padId));
  const targets = new BigInt64Array(batch * seq);
  const lossWeights = new Float32Array(batch * seq);
  let targetCount = 0;
  let tokenCount = 0;
  rows.forEach((row, r) => {
    if (row.tokens.length > seq)
      throw new RangeError(`row ${r} has ${row.tokens.length} tokens; the graph holds ${seq}`);
    tokenCount += row.tokens.length;
    row.tokens.forEach((t, i) => {
      inputIds[r * seq + i] = BigInt(t);
      if (i > 0) targets[r * seq + i - 1] = BigInt(t);
      if (i > 0 && row.target[i]) {
        lossWeights[r * seq + i - 1] = weightPerTarget;
        targetCount += 1;
      }
    });
  });
  return { batch, seq, inputIds, targets, lossWeights, targetCount, tokenCount };
}
