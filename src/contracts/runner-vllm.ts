// The runner's vLLM-compatible endpoints beyond OpenAI's: /tokenize, /detokenize, /version, and the model
// cards of /v1/models (vllm/entrypoints/openai/protocol.py: TokenizeCompletionRequest, TokenizeChatRequest,
// DetokenizeRequest, ModelCard). The runner owns these request shapes, so a field it does not know is refused
// by name, and a vLLM field it does not implement is refused unless it carries vLLM's default
// (docs/conventions.md#validation).
import { z } from "zod";
import { MessagesSchema, RESERVED_TEMPLATE_KWARGS, refineChatBounds } from "./openai.ts";
import { REQUEST_BOUNDS } from "./request-bounds.ts";

const tokenIds = z.array(z.number().int().nonnegative());
const boundedTokenIds = tokenIds.max(
  REQUEST_BOUNDS.maxPromptTokenIds,
  `must hold at most ${REQUEST_BOUNDS.maxPromptTokenIds} token ids`,
);

/** A model card as vLLM's /v1/models gives it: `root` and `parent` say what an adapter runs on. */
export const RunnerModelObjectSchema = z.strictObject({
  id: z.string(),
  object: z.literal("model"),
  created: z.number().int(),
  owned_by: z.string(),
  /** The base: its --model directory. An adapter: the directory it was loaded from, or its content id. */
  root: z.string(),
  /** null for the base model; the base model's id for an adapter. */
  parent: z.string().nullable(),
  max_model_len: z.number().int().positive(),
  /** Always empty: this runner grants no per-model permissions. */
  permission: z.tuple([]),
});
export type RunnerModelObject = z.infer<typeof RunnerModelObjectSchema>;

export const RunnerModelListSchema = z.strictObject({
  object: z.literal("list"),
  data: z.array(RunnerModelObjectSchema),
});
export type RunnerModelList = z.infer<typeof RunnerModelListSchema>;

type Neutral = (value: unknown) => boolean;
const absent: Neutral = (v) => v === null || v === undefined;
const falsy: Neutral = (v) => absent(v) || v === false;
const emptyList: Neutral = (v) => absent(v) || (Array.isArray(v) && v.length === 0);
const emptyObject: Neutral = (v) =>
  absent(v) || (typeof v === "object" && !Array.isArray(v) && Object.keys(v as object).length === 0);

/**
 * Adds one issue per field of `body` that is neither in `known` nor a neutral value of a field in `refused`,
 * each at the field's own path so the error's `param` names it (a strict object would report them at the root).
 */
function refuseFields(
  body: Record<string, unknown>,
  ctx: z.RefinementCtx,
  endpoint: string,
  known: readonly string[],
  refused: Readonly<Record<string, Neutral>>,
): void {
  for (const [field, value] of Object.entries(body)) {
    if (known.includes(field)) continue;
    const neutral = refused[field];
    if (neutral?.(value)) continue;
    ctx.addIssue({
      code: "custom",
      path: [field],
      message:
        neutral === undefined
          ? `is not a field of ${endpoint} (it takes ${known.join(", ")})`
          : `is not supported by this runner's ${endpoint}`,
      input: value,
    });
  }
}

const model = z.string().min(1, "must name a model").nullish();

const TOKENIZE_FIELDS = [
  "model",
  "prompt",
  "messages",
  "add_special_tokens",
  "add_generation_prompt",
  "chat_template_kwargs",
] as const;
// vLLM's other /tokenize fields, accepted only with their defaults
const TOKENIZE_REFUSED: Record<string, Neutral> = {
  return_token_strs: falsy,
  continue_final_message: falsy,
  chat_template: absent,
  mm_processor_kwargs: emptyObject,
  tools: emptyList,
};

/**
 * POST /tokenize: `prompt` (a completion prompt; `add_special_tokens` defaults to true) or `messages` (rendered
 * with the chat template; `add_generation_prompt` defaults to true, `add_special_tokens` to false because the
 * template carries its own BOS), as vLLM's two request kinds.
 */
export const TokenizeRequestSchema = z
  .looseObject({
    model,
    prompt: z
      .string()
      .max(REQUEST_BOUNDS.maxPromptChars, `must be at most ${REQUEST_BOUNDS.maxPromptChars} characters`)
      .optional(),
    messages: MessagesSchema.optional(),
    add_special_tokens: z.boolean().nullish(),
    add_generation_prompt: z.boolean().nullish(),
    /** Extra chat template variables (e.g. enable_thinking), as on /v1/chat/completions. */
    chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
  })
  .superRefine((body, ctx) => {
    refuseFields(body, ctx, "/tokenize", TOKENIZE_FIELDS, TOKENIZE_REFUSED);
    if (body.messages !== undefined) refineChatBounds({ ...body, messages: body.messages }, ctx);
    for (const key of Object.keys(body.chat_template_kwargs ?? {})) {
      if (RESERVED_TEMPLATE_KWARGS.includes(key)) {
        ctx.addIssue({
          code: "custom",
          path: ["chat_template_kwargs", key],
          message: "is set by the request's own field, not by chat_template_kwargs",
          input: body.chat_template_kwargs?.[key],
        });
      }
    }
    if (body.prompt !== undefined && body.chat_template_kwargs != null) {
      ctx.addIssue({
        code: "custom",
        path: ["chat_template_kwargs"],
        message: "applies to messages only",
        input: body.chat_template_kwargs,
      });
    }
    if (body.prompt === undefined && body.messages === undefined) {
      ctx.addIssue({ code: "custom", path: ["prompt"], message: "is required (or messages, for a chat)" });
    }
    if (body.prompt !== undefined && body.messages !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["messages"],
        message: "cannot be sent with prompt: send prompt for a completion or messages for a chat",
        input: body.messages,
      });
    }
    if (body.prompt !== undefined && body.add_generation_prompt != null) {
      ctx.addIssue({
        code: "custom",
        path: ["add_generation_prompt"],
        message: "applies to messages only",
        input: body.add_generation_prompt,
      });
    }
  });
export type TokenizeRequest = z.infer<typeof TokenizeRequestSchema>;

export const TokenizeResponseSchema = z.strictObject({
  count: z.number().int().nonnegative(),
  /** The model's context length: the most tokens a prompt and its completion may hold together. */
  max_model_len: z.number().int().positive(),
  tokens: tokenIds,
});
export type TokenizeResponse = z.infer<typeof TokenizeResponseSchema>;

/** POST /detokenize: the text of `tokens`, special tokens included (vLLM decodes them as they are). */
export const DetokenizeRequestSchema = z
  .looseObject({ model, tokens: boundedTokenIds })
  .superRefine((body, ctx) => refuseFields(body, ctx, "/detokenize", ["model", "tokens"], {}));
export type DetokenizeRequest = z.infer<typeof DetokenizeRequestSchema>;

export const DetokenizeResponseSchema = z.strictObject({ prompt: z.string() });
export type DetokenizeResponse = z.infer<typeof DetokenizeResponseSchema>;

export const VersionResponseSchema = z.strictObject({ version: z.string() });
export type VersionResponse = z.infer<typeof VersionResponseSchema>;
