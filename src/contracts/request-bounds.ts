// The sizes an inference request may have, shared by the edge and the runner so both refuse the same request
// with the same message (docs/conventions.md#contracts). Each bound is checked by the request schemas
// (openai.ts, runner-vllm.ts) before anything tokenizes, renders a template or allocates per element, so a
// request that is merely large answers 400 at the cost of reading it, never at the cost of serving it.
// README.md's "Limits" table lists them.

export const REQUEST_BOUNDS = {
  /**
   * Characters of prompt text in one request: every message's content (parts included) of a chat, every
   * prompt string of a completion. 8 Mi characters is a prompt of about two million tokens, beyond any
   * context this project serves; the context length refuses most prompts far below it.
   */
  maxPromptChars: 8 * 1024 * 1024,
  /** Messages in one chat request. */
  maxMessages: 4096,
  /** Content parts in one message. */
  maxContentParts: 256,
  /**
   * Prompts in one /v1/completions request. Each prompt is one sequence in the runner's queue, so a request
   * with more than the runner's batch and queue together could never run; it is refused, not throttled.
   */
  maxPrompts: 256,
  /** Token ids in one prompt given as ids (and in one /detokenize request). */
  maxPromptTokenIds: 1024 * 1024,
  /** Stop strings, as OpenAI's API allows. */
  maxStop: 4,
  /** Characters in one stop string: each generated token is matched against it. */
  maxStopChars: 1024,
  /** Entries of stop_token_ids. */
  maxStopTokenIds: 256,
  /** Entries of logit_bias. */
  maxLogitBias: 1024,
  /** Variables in chat_template_kwargs. */
  maxTemplateKwargs: 64,
} as const;

/**
 * Problems listed in an error body's `details`: the first ones, then one line counting the rest, so a request
 * with a hundred thousand mistakes gets an answer of a few KiB, not megabytes.
 */
export const MAX_REPORTED_PROBLEMS = 20;

/** Content characters of chat messages, counted without joining them. */
export function contentChars(
  messages: ReadonlyArray<{ content: string | ReadonlyArray<{ text?: string | undefined }> | null }>,
): number {
  let total = 0;
  for (const message of messages) {
    const { content } = message;
    if (content === null) continue;
    if (typeof content === "string") total += content.length;
    else for (const part of content) total += part.text?.length ?? 0;
  }
  return total;
}
