// One generation as the HTTP layer sees it: text deltas (stable UTF-8, stop strings cut) with their
// tokens' logprobs, then the end. Glues the tokenizer's stream decoder and stop matcher to the scheduler.

import type { PromptTokenLogprobs, SamplingParams, TokenLogprob } from "../../engine/sampler.ts";
import { createStopMatcher, type RunnerTokenizer } from "../../engine/tokenizer/index.ts";
import type { Lease } from "../adapters.ts";
import type { FinishReason, Scheduler } from "../scheduler.ts";
import { type Channel, createChannel } from "./channel.ts";

export interface GeneratedToken extends TokenLogprob {
  top: TokenLogprob[];
}

export type GenerationEvent =
  | { type: "delta"; text: string; tokens: GeneratedToken[] }
  | {
      type: "end";
      text: string;
      finishReason: Exclude<FinishReason, "cancelled">;
      promptTokens: number;
      completionTokens: number;
      /** The stop token (eos or one of stop_token_ids) that ended it: counted and in `token_ids`. */
      stopTokenId?: number;
      /** That token with its logprobs: vLLM reports it in logprobs too. */
      stopToken?: GeneratedToken;
      /** vLLM's prompt_logprobs, when asked for. */
      promptLogprobs?: (PromptTokenLogprobs | null)[];
    };

export interface GenerationInput {
  promptIds: number[];
  lease: Lease;
  /** The name the request asked for its adapter by; null for the base (see GenerationRequest.lora). */
  lora: string | null;
  maxTokens: number;
  sampling: SamplingParams;
  seed: number | null;
  stop: string[];
  /** Every token that ends generation: the model's eos ids (unless ignore_eos) and stop_token_ids. */
  stopTokenIds: number[];
  /** vLLM's min_tokens: no stop token, and no stop string, ends generation before this many tokens. */
  minTokens?: number;
  /**
   * vLLM's include_stop_str_in_output: the matched stop string, or the stop token's text, stays in the
   * output (a special token's text only with skipSpecialTokens off).
   */
  includeStopStrInOutput?: boolean;
  /** vLLM's skip_special_tokens (default true): false keeps special tokens' text in the output. */
  skipSpecialTokens?: boolean;
  promptLogprobs?: number | null;
  /** The tenant the edge named (GenerationRequest.tenant); null: the runner's own callers. */
  tenant?: string | null;
  signal: AbortSignal;
}

/** Starts a generation; throws queue_full synchronously. The lease is released when it ends, however. */
export function startGeneration(
  scheduler: Scheduler,
  tokenizer: RunnerTokenizer,
  input: GenerationInput,
): AsyncIterable<GenerationEvent> {
  const channel: Channel<GenerationEvent> = createChannel();
  const decoder = tokenizer.createStreamDecoder({ skipSpecialTokens: input.skipSpecialTokens ?? true });
  const matcher = createStopMatcher(input.stop);
  const minTokens = input.minTokens ?? 0;
  const include = input.includeStopStrInOutput === true;
  let stopped = false;
  let generated = 0;
  const { lease } = input;
  try {
    scheduler.submit(
      {
        promptIds: input.promptIds,
        slot: lease.slot,
        adapter: lease.adapterId,
        lora: input.lora,
        maxTokens: input.maxTokens,
        sampling: input.sampling,
        seed: input.seed,
        stopTokenIds: input.stopTokenIds,
        minTokens,
        promptLogprobs: input.promptLogprobs ?? null,
        tenant: input.tenant ?? null,
        signal: input.signal,
      },
      {
        onToken(token) {
          generated++;
          // as vLLM: stop strings count only in text of tokens after the first min_tokens
          const result = matcher.push(decoder.push(token.token), generated > minTokens);
          stopped = result.stopped;
          const text = include && result.stopped ? result.text + (matcher.matched() ?? "") : result.text;
          channel.push({ type: "delta", text, tokens: [token] });
          return stopped;
        },
        onEnd(end) {
          lease.release();
          if (end.finishReason === "cancelled") {
            channel.close();
            return;
          }
          let tail = "";
          if (!stopped) {
            // a stop token's text is left out (vLLM's detokenizer skips it) unless asked for
            const last = include && end.stopToken !== undefined ? decoder.push(end.stopToken.token) : "";
            const result = matcher.push(last + decoder.flush(), generated > minTokens);
            tail = result.stopped
              ? result.text + (include ? (matcher.matched() ?? "") : "")
              : result.text + matcher.flush();
          }
          channel.push({ type: "end", text: tail, ...end, finishReason: end.finishReason });
          channel.close();
        },
        onError(error) {
          lease.release();
          channel.fail(error);
        },
      },
    );
  } catch (error) {
    lease.release();
    throw error;
  }
  return channel;
}
