// What the runner needs of a tokenizer, apart from where it comes from (tokenizer.json, or none at all):
// both implementations import this, so neither imports the other.
import type { ChatMessage, RenderOptions } from "./chat-template.ts";
import type { StreamDecoder } from "./stream-decoder.ts";

export interface RunnerTokenizer {
  /**
   * "text": a tokenizer.json was loaded. "token_ids": the model directory has none, so prompts arrive and
   * completions leave as token ids only (vLLM's --skip-tokenizer-init); every text method refuses.
   */
  readonly mode: "text" | "token_ids";
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  /** The chat template's text for `messages` (invalid_request when the model has no template). */
  renderChat(messages: ChatMessage[], options: RenderOptions): string;
  /** Token ids of the rendered chat; the template carries its own BOS, so none is added again. */
  encodeChat(messages: ChatMessage[], options: RenderOptions): number[];
  /** One token's text on its own (may hold U+FFFD for part of a character). */
  tokenText(id: number): string;
  /** One token's raw UTF-8 bytes. */
  tokenBytes(id: number): number[];
  /** Streams text for generated ids, skipping special tokens unless `skipSpecialTokens` is false. */
  createStreamDecoder(options?: { skipSpecialTokens?: boolean }): StreamDecoder;
  /** The tokenizer's own eos token id, when it has one. */
  readonly eosTokenId: number | null;
  readonly vocabSize: number;
}
