// Token selection from one row's logits: greedy, temperature, top-k, top-p, seeded, with OpenAI-style
// logprobs. Logprobs come from the model's own distribution (log-softmax of the raw logits, as vLLM
// reports by default), not from the truncated one sampled from.
import type { Rng } from "../../src/random.ts";

export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** 1 keeps the whole distribution. */
  topP: number;
  /** 0 keeps every token. */
  topK: number;
  /** Alternatives to report per token (0..20); null reports no logprobs. */
  topLogprobs: number | null;
  /** OpenAI's penalties on tokens already generated: logit -= count·frequency + (count > 0)·presence. */
  presencePenalty?: number;
  frequencyPenalty?: number;
}

export interface TokenLogprob {
  token: number;
  logprob: number;
}

export interface SampledToken extends TokenLogprob {
  /** Most likely tokens, best first, when logprobs were asked for. */
  top: TokenLogprob[];
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i] as number;
    // strict > keeps the lowest id on ties, the same choice torch.argmax makes
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

function logSumExp(logits: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

/** The `k` highest-logit ids, best first (ties: lower id first). */
export function topIds(logits: Float32Array, k: number): number[] {
  const n = Math.min(k, logits.length);
  // insertion into a short list is O(V·k): beyond a few dozen, one full sort is cheaper
  if (n > 64) {
    const all = Array.from(logits.keys());
    all.sort((a, b) => (logits[b] as number) - (logits[a] as number) || a - b);
    return all.slice(0, n);
  }
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i] as number;
    if (ids.length === n && v <= (logits[ids[n - 1] as number] as number)) continue;
    let at = ids.length === n ? n - 1 : ids.length;
    while (at > 0 && (logits[ids[at - 1] as number] as number) < v) at--;
    ids.splice(at, 0, i);
    if (ids.length > n) ids.pop();
  }
  return ids;
}

/** Candidates kept by top-k and top-p with their probabilities at `temperature`, best first. */
function candidates(logits: Float32Array, params: SamplingParams): { ids: number[]; probs: number[] } {
  const k = params.topK > 0 ? Math.min(params.topK, logits.length) : logits.length;
  const ids = topIds(logits, k);
  const best = logits[ids[0] as number] as number;
  const weights = ids.map((id) => Math.exp(((logits[id] as number) - best) / params.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  const probs = weights.map((w) => w / total);
  if (params.topP >= 1) return { ids, probs };
  let mass = 0;
  let keep = 0;
  // keep the smallest prefix whose mass reaches top_p (at least one token)
  while (keep < probs.length && (keep === 0 || mass < params.topP)) mass += probs[keep++] as number;
  const kept = probs.slice(0, keep);
  return { ids: ids.slice(0, keep), probs: kept.map((p) => p / mass) };
}

function draw(ids: number[], probs: number[], rng: Rng): number {
  const u = rng.nextFloat();
  let acc = 0;
  for (let i = 0; i < ids.length; i++) {
    acc += probs[i] as number;
    if (u < acc) return ids[i] as number;
  }
  return ids[ids.length - 1] as number;
}

/** A penalised copy of the logits, or the logits themselves when no penalty applies. */
function penalised(
  logits: Float32Array,
  params: SamplingParams,
  counts: Map<number, number> | undefined,
): Float32Array {
  const presence = params.presencePenalty ?? 0;
  const frequency = params.frequencyPenalty ?? 0;
  if (!counts || counts.size === 0 || (presence === 0 && frequency === 0)) return logits;
  const out = logits.slice();
  for (const [id, count] of counts) out[id] = (out[id] as number) - count * frequency - presence;
  return out;
}

/**
 * Picks the next token. `counts` (generated token → times) feeds the penalties; logprobs stay those of
 * the model's raw distribution.
 */
export function sampleToken(
  logits: Float32Array,
  params: SamplingParams,
  rng: Rng,
  counts?: Map<number, number>,
): SampledToken {
  const scores = penalised(logits, params, counts);
  let token: number;
  if (params.temperature === 0) token = argmax(scores);
  else {
    const { ids, probs } = candidates(scores, params);
    token = draw(ids, probs, rng);
  }
  if (params.topLogprobs === null) return { token, logprob: 0, top: [] };
  const lse = logSumExp(logits);
  const logprob = (logits[token] as number) - lse;
  const top = topIds(logits, params.topLogprobs).map((id) => ({
    token: id,
    logprob: (logits[id] as number) - lse,
  }));
  return { token, logprob, top };
}
