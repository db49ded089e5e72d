// Token selection from one row's logits: greedy, temperature, top-k, top-p, min-p, seeded, with OpenAI-style
// logprobs, and vLLM's logits processors (logit_bias, min_tokens' suppression, repetition, presence and
// frequency penalties). Processors run in vLLM's order: logit bias and suppression, then penalties, then
// temperature, min-p, top-k and top-p. Logprobs come from the model's own distribution (log-softmax of the raw
// logits, vLLM's default `raw_logprobs`), not from the processed one sampled from. It never changes `logits`.
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
  /**
   * Hugging Face's and vLLM's repetition penalty on every token of the prompt and the output: a positive logit
   * is divided by it, a negative one multiplied. 1 (the default) is off.
   */
  repetitionPenalty?: number;
  /** Drops tokens whose probability (at `temperature`) is below minP × the top token's. 0 (the default) is off. */
  minP?: number;
  /** Token id → bias added to its logit before anything else (OpenAI's logit_bias, -100..100). */
  logitBias?: ReadonlyMap<number, number>;
}

/** What a row's history contributes to the next choice. */
export interface SamplerContext {
  /** Generated token → times, for presence and frequency penalties. */
  counts?: ReadonlyMap<number, number>;
  /** The prompt's tokens, which the repetition penalty covers besides the generated ones. */
  promptTokens?: ReadonlySet<number>;
  /** Tokens that must not be chosen now (min_tokens holds eos and stop_token_ids back). */
  suppress?: readonly number[];
}

export interface TokenLogprob {
  token: number;
  logprob: number;
}

export interface SampledToken extends TokenLogprob {
  /** Most likely tokens, best first, when logprobs were asked for. */
  top: TokenLogprob[];
}

/** One prompt token's logprob under the model given the tokens before it, as vLLM's prompt_logprobs. */
export interface RankedLogprob extends TokenLogprob {
  /** 1-based: how many tokens are at least as likely (vLLM's rank). */
  rank: number;
}

export interface PromptTokenLogprobs extends RankedLogprob {
  /** The `k` most likely tokens, best first, ranked 1..k. */
  top: RankedLogprob[];
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

/**
 * Candidates kept by top-k, min-p and top-p with their probabilities at `temperature`, best first. min-p is a
 * threshold relative to the best token, so it keeps a prefix of the top-k list and commutes with top-k; top-p
 * then takes its nucleus of what is left, renormalised, as vLLM applies them.
 */
function candidates(logits: Float32Array, params: SamplingParams): { ids: number[]; probs: number[] } {
  const k = params.topK > 0 ? Math.min(params.topK, logits.length) : logits.length;
  let ids = topIds(logits, k);
  const best = logits[ids[0] as number] as number;
  // weights relative to the best token (which has weight 1), so min-p compares them directly
  let weights = ids.map((id) => Math.exp(((logits[id] as number) - best) / params.temperature));
  const minP = params.minP ?? 0;
  if (minP > 0) {
    let keep = 1;
    while (keep < weights.length && (weights[keep] as number) >= minP) keep++;
    ids = ids.slice(0, keep);
    weights = weights.slice(0, keep);
  }
  // a suppressed (-inf) token has weight 0: drop it so it can never be drawn
  while (ids.length > 1 && (weights[ids.length - 1] as number) === 0) {
    ids.pop();
    weights.pop();
  }
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

/** Hugging Face's RepetitionPenaltyLogitsProcessor on one logit: divide if positive, else multiply. */
export function repetitionPenalised(logit: number, penalty: number): number {
  return logit > 0 ? logit / penalty : logit * penalty;
}

/**
 * The logits after vLLM's processors, in its order: logit bias and suppression (min_tokens), then the
 * repetition penalty over prompt and output tokens, then presence and frequency over output tokens. The input
 * itself when nothing applies; otherwise a copy.
 */
export function processLogits(
  logits: Float32Array,
  params: SamplingParams,
  context: SamplerContext = {},
): Float32Array {
  const presence = params.presencePenalty ?? 0;
  const frequency = params.frequencyPenalty ?? 0;
  const repetition = params.repetitionPenalty ?? 1;
  const counts = context.counts;
  const bias = params.logitBias;
  const suppress = context.suppress ?? [];
  const penalties = counts !== undefined && counts.size > 0 && (presence !== 0 || frequency !== 0);
  const repeated = repetition !== 1 && ((counts?.size ?? 0) > 0 || (context.promptTokens?.size ?? 0) > 0);
  if (!penalties && !repeated && (bias === undefined || bias.size === 0) && suppress.length === 0)
    return logits;
  const out = logits.slice();
  if (bias !== undefined) for (const [id, b] of bias) out[id] = (out[id] as number) + b;
  for (const id of suppress) out[id] = Number.NEGATIVE_INFINITY;
  if (repeated) {
    const seen = new Set<number>(context.promptTokens ?? []);
    for (const id of counts?.keys() ?? []) seen.add(id);
    for (const id of seen) out[id] = repetitionPenalised(out[id] as number, repetition);
  }
  if (penalties && counts !== undefined) {
    for (const [id, count] of counts) out[id] = (out[id] as number) - count * frequency - presence;
  }
  return out;
}

/**
 * Picks the next token. `counts` (generated token → times) feeds the penalties (kept as its own argument for
 * callers that only have counts); `context` adds the prompt for the repetition penalty and the suppressed
 * tokens. Logprobs stay those of the model's raw distribution.
 */
export function sampleToken(
  logits: Float32Array,
  params: SamplingParams,
  rng: Rng,
  counts?: ReadonlyMap<number, number>,
  context: Omit<SamplerContext, "counts"> = {},
): SampledToken {
  const scores = processLogits(logits, params, { ...context, ...(counts ? { counts } : {}) });
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

/**
 * The logprob and rank of `token` under `logits` (the model's raw distribution), with the `k` most likely
 * tokens: one entry of vLLM's prompt_logprobs. Rank counts the tokens at least as likely, as vLLM does.
 */
export function tokenLogprobs(logits: Float32Array, token: number, k: number): PromptTokenLogprobs {
  const lse = logSumExp(logits);
  const value = logits[token] as number;
  let rank = 0;
  for (const v of logits) if (v >= value) rank++;
  const top = topIds(logits, k).map((id, i) => ({
    token: id,
    logprob: (logits[id] as number) - lse,
    rank: i + 1,
  }));
  return { token, logprob: value - lse, rank, top };
}
