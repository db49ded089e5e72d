// One generation as the HTTP layer sees it: text deltas (stable UTF-8, stop strings cut) with their
// tokens' logprobs, then the end. Glues the tokenizer's stream decoder and stop matcher to the scheduler.

import type { SamplingParams, TokenLogprob } from "../../engine/sampler.ts";
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
      /** The eos that ended it: counted and in `token_ids`, never in text. */
      stopTokenId?: number;
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
  stopTokenIds: number[];
  signal: AbortSignal;
}

/** Starts a generation; throws queue_full synchronously. The lease is released when it ends, however. */
export function startGeneration(
  scheduler: Scheduler,
  tokenizer: RunnerTokenizer,
  input: GenerationInput,
): AsyncIterable<GenerationEvent> {
  const channel: Channel<GenerationEvent> = createChannel();
  const decoder = tokenizer.createStreamDecoder();
  const matcher = createStopMatcher(input.stop);
  let stopped = false;
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
        signal: input.signal,
      },
      {
        onToken(token) {
          const result = matcher.push(decoder.push(token.token));
          stopped = result.stopped;
          channel.push({ type: "delta", text: result.text, tokens: [token] });
          return stopped;
        },
        onEnd(end) {
          lease.release();
          if (end.finishReason === "cancelled") {
            channel.close();
            return;
          }
          const tail = stopped ? "" : matcher.push(decoder.flush()).text + matcher.flush();
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
