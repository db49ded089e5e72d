// The tokenizer of a model directory without tokenizer.json (vLLM's --skip-tokenizer-init): the runner still
// serves it, with prompts and completions as token ids. Every text operation refuses with the remedy, so a
// text prompt fails loudly instead of being generated from nonsense ids.
import { AppError } from "../../../src/errors.ts";
import type { RunnerTokenizer } from "./types.ts";

const SEND_IDS =
  "send prompt as token ids (number[] or number[][]) to /v1/completions, or add tokenizer.json (and tokenizer_config.json for chat) to the model directory and restart the runner";

/** The refusal every text operation gives in token-ids mode: what failed, the missing file, the way out. */
export function tokenIdsOnly(model: string, param: string, what: string, remedy = SEND_IDS): AppError {
  return new AppError(
    "invalid_request",
    `${param}: ${what}: model "${model}" has no tokenizer.json, so this runner serves it in token-ids mode; ${remedy}`,
    { param },
  );
}

/**
 * `model` is the name the runner serves (it appears in refusals); `vocabSize` comes from the model config,
 * since there is no vocabulary file to count.
 */
export function createAbsentTokenizer(model: string, vocabSize: number): RunnerTokenizer {
  const refuse = (param: string, what: string) => () => {
    throw tokenIdsOnly(model, param, what);
  };
  // vLLM's return_tokens_as_token_ids spelling, so logprobs stay keyed by something a client can parse
  const tokenText = (id: number) => `token_id:${id}`;
  return {
    mode: "token_ids",
    encode: refuse("prompt", "a text prompt cannot be encoded"),
    decode: refuse("prompt", "token ids cannot be decoded to text"),
    renderChat: refuse("messages", "chat messages cannot be rendered and encoded"),
    encodeChat: refuse("messages", "chat messages cannot be rendered and encoded"),
    tokenText,
    tokenBytes: (id) => [...new TextEncoder().encode(tokenText(id))],
    // completions in this mode have no text: every piece is "", the ids travel beside it
    createStreamDecoder: () => ({ push: () => "", flush: () => "" }),
    eosTokenId: null,
    vocabSize,
  };
}
