// OpenAI response pieces built from generation events: ids, usage, and both logprobs layouts (chat's
// per-token objects and legacy completions' parallel arrays).
import type { PromptLogprobs, Usage } from "../../../src/contracts/openai.ts";
import { AppError } from "../../../src/errors.ts";
import type { PromptTokenLogprobs } from "../../engine/sampler.ts";
import type { RunnerTokenizer } from "../../engine/tokenizer/index.ts";
import type { GeneratedToken, GenerationEvent } from "./generate.ts";

export function completionId(prefix: "chatcmpl" | "cmpl"): string {
  return `${prefix}-${crypto.randomUUID().replace(/-/g, "")}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

export function chatLogprobs(tokenizer: RunnerTokenizer, tokens: GeneratedToken[]) {
  const entry = (id: number, logprob: number) => ({
    token: tokenizer.tokenText(id),
    logprob,
    bytes: tokenizer.tokenBytes(id),
  });
  return tokens.map((t) => ({
    ...entry(t.token, t.logprob),
    top_logprobs: t.top.map((a) => entry(a.token, a.logprob)),
  }));
}

/** Legacy layout; `offset` is where this piece's text starts in the whole completion. */
export function completionLogprobs(tokenizer: RunnerTokenizer, tokens: GeneratedToken[], offset: number) {
  const texts = tokens.map((t) => tokenizer.tokenText(t.token));
  const textOffset: number[] = [];
  let at = offset;
  for (const text of texts) {
    textOffset.push(at);
    at += text.length;
  }
  return {
    tokens: texts,
    token_logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) =>
      Object.fromEntries(t.top.map((a) => [tokenizer.tokenText(a.token), a.logprob])),
    ),
    text_offset: textOffset,
  };
}

/**
 * vLLM's prompt_logprobs layout: per prompt token null (the first) or token id → {logprob, rank,
 * decoded_token}, the actual token and the top alternatives. JSON objects list integer keys in ascending order,
 * so the actual token is not necessarily first, as it is in vLLM's Python dict; clients key by id.
 */
export function promptLogprobsOf(
  tokenizer: RunnerTokenizer,
  entries: readonly (PromptTokenLogprobs | null)[],
): PromptLogprobs {
  return entries.map((entry) => {
    if (entry === null) return null;
    const out: NonNullable<PromptLogprobs[number]> = {};
    for (const t of [entry, ...entry.top]) {
      const key = String(t.token);
      if (key in out) continue;
      out[key] = { logprob: t.logprob, rank: t.rank, decoded_token: tokenizer.tokenText(t.token) };
    }
    return out;
  });
}

/** The tokens an event's logprobs cover: its sampled tokens, or the stop token that ended it. */
export function logprobTokens(event: GenerationEvent): GeneratedToken[] {
  if (event.type === "delta") return event.tokens;
  return event.stopToken === undefined ? [] : [event.stopToken];
}

/** Which of vLLM's token-id fields a response carries. */
export interface TokenIdFields {
  prompt: boolean;
  completion: boolean;
}

/** vLLM's return_token_ids; a model without a tokenizer always returns the completion's ids, its only output. */
export function tokenIdFields(
  tokenizer: RunnerTokenizer,
  req: { return_token_ids?: boolean | null | undefined },
): TokenIdFields {
  const asked = req.return_token_ids === true;
  return { prompt: asked, completion: asked || tokenizer.mode === "token_ids" };
}

/**
 * vLLM's `token_ids` of one event: every sampled id, including the eos that ended generation (vLLM's
 * detokenizer skips a stop token's text but still appends its id), so their count is `completion_tokens`.
 */
export function idsOf(event: GenerationEvent): number[] {
  if (event.type === "delta") return event.tokens.map((t) => t.token);
  return event.stopTokenId === undefined ? [] : [event.stopTokenId];
}

export interface Collected {
  text: string;
  /** Every sampled token with its logprobs, the stop token that ended it included (as vLLM reports). */
  tokens: GeneratedToken[];
  /** `token_ids` of the whole completion (see idsOf). */
  tokenIds: number[];
  finishReason: "stop" | "length";
  promptTokens: number;
  completionTokens: number;
  promptLogprobs?: (PromptTokenLogprobs | null)[];
}

/** Drains a generation into its whole text (for non-streaming responses). */
export async function collect(events: AsyncIterable<GenerationEvent>): Promise<Collected> {
  let text = "";
  const tokens: GeneratedToken[] = [];
  const tokenIds: number[] = [];
  for await (const event of events) {
    text += event.text;
    tokenIds.push(...idsOf(event));
    tokens.push(...logprobTokens(event));
    if (event.type === "end")
      return {
        text,
        tokens,
        tokenIds,
        finishReason: event.finishReason,
        promptTokens: event.promptTokens,
        completionTokens: event.completionTokens,
        ...(event.promptLogprobs === undefined ? {} : { promptLogprobs: event.promptLogprobs }),
      };
  }
  // a generation only ends without an "end" event when it was cancelled: the client has gone, so this
  // answer is never read; an AppError keeps it out of the fault log
  throw new AppError("unavailable", "the request was cancelled: the client went away");
}

/** Interleaves several generations' events as they come, tagged with their choice index. */
export async function* mergeIndexed(
  sources: AsyncIterable<GenerationEvent>[],
): AsyncGenerator<{ index: number; event: GenerationEvent }> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  const next = (index: number) =>
    (iterators[index] as AsyncIterator<GenerationEvent>).next().then((result) => ({ index, result }));
  const pending = new Map(iterators.map((_, i) => [i, next(i)]));
  while (pending.size > 0) {
    const { index, result } = await Promise.race(pending.values());
    if (result.done) {
      pending.delete(index);
      continue;
    }
    pending.set(index, next(index));
    yield { index, event: result.value };
  }
}
