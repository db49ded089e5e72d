// The model's tokenizer as the runner uses it: Hugging Face tokenizer.json through @huggingface/tokenizers,
// the chat template through @huggingface/jinja, and the ids that end generation.
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { AppError } from "../../../src/errors.ts";
import {
  type ChatMessage,
  type ChatTemplate,
  compileChatTemplate,
  pickTemplate,
  type RenderOptions,
} from "./chat-template.ts";
import { createStreamDecoder } from "./stream-decoder.ts";
import { createTokenBytes, usesByteLevel } from "./token-bytes.ts";
import type { RunnerTokenizer } from "./types.ts";

export type { ChatMessage, RenderOptions } from "./chat-template.ts";
export { createStopMatcher, type StopMatcher, type StopResult } from "./stop-strings.ts";
export type { StreamDecoder } from "./stream-decoder.ts";
export { createAbsentTokenizer } from "./tokenizer-absent.ts";
export type { RunnerTokenizer } from "./types.ts";

async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new AppError("invalid_model", `${path}: cannot read (${(error as Error).message})`);
  }
  try {
    const value = JSON.parse(text);
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not an object");
    return value as Record<string, unknown>;
  } catch (error) {
    throw new AppError("invalid_model", `${path}: must be a JSON object (${(error as Error).message})`);
  }
}

async function readOptionalText(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/** Special tokens in tokenizer_config.json are either strings or AddedToken objects ({content, ...}). */
function specialTokenStrings(config: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    const value = config[key];
    if (typeof value === "string") out[key] = value;
    else if (
      value &&
      typeof value === "object" &&
      typeof (value as { content?: unknown }).content === "string"
    ) {
      out[key] = (value as { content: string }).content;
    }
  }
  return out;
}

export const TOKENIZER_FILE = "tokenizer.json";

/** Whether the model directory carries a tokenizer; without one the runner serves token ids only. */
export async function hasTokenizer(modelDir: string): Promise<boolean> {
  try {
    await stat(join(modelDir, TOKENIZER_FILE));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw new AppError("invalid_model", `${join(modelDir, TOKENIZER_FILE)}: ${(error as Error).message}`);
  }
}

/**
 * Loads tokenizer.json + tokenizer_config.json (+ special_tokens_map.json, + chat_template.jinja, which wins
 * over the config's template, as in transformers).
 */
export async function loadTokenizer(modelDir: string): Promise<RunnerTokenizer> {
  const json = (await readJson(join(modelDir, TOKENIZER_FILE), true)) as Record<string, unknown>;
  const config = (await readJson(join(modelDir, "tokenizer_config.json"), false)) ?? {};
  // older transformers kept bos/eos in special_tokens_map.json; tokenizer_config.json wins when both name one
  const legacy = (await readJson(join(modelDir, "special_tokens_map.json"), false)) ?? {};
  const specials = { ...specialTokenStrings(legacy), ...specialTokenStrings(config) };
  const tokenizer = new Tokenizer(json, { ...config, ...specials });
  const source =
    (await readOptionalText(join(modelDir, "chat_template.jinja"))) ?? pickTemplate(config.chat_template);
  const template = source === null ? null : compileChatTemplate(source, specials);
  return fromParts(tokenizer, template, specials.eos_token, usesByteLevel(json));
}

function fromParts(
  tokenizer: Tokenizer,
  template: ChatTemplate | null,
  eosToken: string | undefined,
  byteLevel: boolean,
): RunnerTokenizer {
  const encode = (text: string, options: { addSpecialTokens?: boolean } = {}) =>
    tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  // @huggingface/tokenizers refuses an empty id list; the empty decode is simply ""
  const decode = (ids: number[], options: { skipSpecialTokens?: boolean } = {}) =>
    ids.length === 0
      ? ""
      : tokenizer.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false });
  const renderChat = (messages: ChatMessage[], options: RenderOptions) => {
    if (template === null) {
      throw new AppError("invalid_request", "this model has no chat template; use /v1/completions", {
        param: "messages",
      });
    }
    return template.render(messages, options);
  };
  const added = tokenizer.get_added_tokens_decoder();
  const tokenText = (id: number) => decode([id]);
  return {
    mode: "text",
    encode,
    decode,
    tokenText,
    tokenBytes: createTokenBytes(
      byteLevel,
      (id) => tokenizer.id_to_token(id),
      (id) => added.has(id),
      tokenText,
    ),
    renderChat,
    encodeChat: (messages, options) => encode(renderChat(messages, options), { addSpecialTokens: false }),
    createStreamDecoder: (options = {}) =>
      createStreamDecoder((ids) => decode(ids, { skipSpecialTokens: options.skipSpecialTokens ?? true })),
    eosTokenId: eosToken === undefined ? null : (tokenizer.token_to_id(eosToken) ?? null),
    vocabSize: tokenizer.get_vocab(true).size,
  };
}
