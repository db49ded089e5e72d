// OpenAI-compatible wire shapes (chat completions, legacy completions, models, errors). Requests are loose:
// OpenAI SDKs send fields we do not read, and they must pass. Responses are strict: we produce them.
// Features we do not serve are refused by name (n > 1, echo, non-text content, and every field listed in
// openai-refusals.ts) rather than ignored; README.md's "OpenAI and vLLM request fields" lists them.
import { z } from "zod";
import { refuseUnimplementedChat, refuseUnimplementedCompletion } from "./openai-refusals.ts";

const nullish = <T extends z.ZodType>(schema: T) => schema.nullish();

const tokenIds = z.array(z.number().int().nonnegative());

/** Sampling fields shared by /v1/chat/completions and /v1/completions. */
const samplingFields = {
  model: z.string().min(1, "must name a model"),
  max_tokens: nullish(z.number().int().positive()),
  temperature: nullish(z.number().min(0).max(2)),
  top_p: nullish(z.number().gt(0).max(1)),
  /** Not OpenAI: vLLM-style top-k; 0 turns it off. */
  top_k: nullish(z.number().int().min(0)),
  seed: nullish(z.number().int()),
  stop: nullish(
    z.union([z.string(), z.array(z.string()).max(4, "must hold at most 4 stop sequences")], {
      error: "must be a string or a list of at most 4 strings",
    }),
  ),
  n: nullish(z.literal(1, { error: "only n = 1 is supported" })),
  stream: nullish(z.boolean()),
  stream_options: nullish(z.looseObject({ include_usage: nullish(z.boolean()) })),
  user: z.string().max(512).optional(),
  presence_penalty: nullish(z.number().min(-2).max(2)),
  frequency_penalty: nullish(z.number().min(-2).max(2)),
  /** Not OpenAI: vLLM's option to return the prompt's and the completion's token ids beside the text. */
  return_token_ids: nullish(z.boolean()),
};

/**
 * A content part. Any `type` parses here and a refinement refuses all but "text": a refinement's issue does
 * not abort, so the content union keeps this branch and `param` names the part's type
 * (`messages[0].content[1].type`) instead of the whole content.
 */
export const TextContentPartSchema = z
  .looseObject({ type: z.string(), text: z.string().optional() })
  .superRefine((part, ctx) => {
    if (part.type !== "text") {
      ctx.addIssue({
        code: "custom",
        path: ["type"],
        message: 'only "text" content parts are supported (image, audio and file parts are not)',
        input: part.type,
      });
    } else if (part.text === undefined) {
      ctx.addIssue({ code: "custom", path: ["text"], message: "is required (string)" });
    }
  });

export const ChatMessageSchema = z.looseObject({
  role: z.enum(["system", "user", "assistant", "tool", "developer"]),
  content: z
    .union([z.string(), z.array(TextContentPartSchema)], {
      error: "must be a string or a list of text parts",
    })
    .nullable(),
  name: z.string().optional(),
  tool_call_id: z.string().optional(),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

export const ChatCompletionRequestSchema = z
  .looseObject({
    ...samplingFields,
    messages: z.array(ChatMessageSchema).min(1, "must hold at least one message"),
    max_completion_tokens: nullish(z.number().int().positive()),
    logprobs: nullish(z.boolean()),
    top_logprobs: nullish(z.number().int().min(0).max(20)),
    /** Not OpenAI: vLLM's switch for the template's generation prompt, off to continue an assistant turn. */
    add_generation_prompt: nullish(z.boolean()),
  })
  .superRefine((req, ctx) => {
    if (req.top_logprobs != null && req.logprobs !== true) {
      ctx.addIssue({
        code: "custom",
        path: ["top_logprobs"],
        message: "requires logprobs: true",
        input: req.top_logprobs,
      });
    }
    refuseUnimplementedChat(req, ctx);
  });
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

export const CompletionRequestSchema = z
  .looseObject({
    ...samplingFields,
    prompt: z.union([z.string(), z.array(z.string()), tokenIds, z.array(tokenIds)], {
      error: "must be a string, a list of strings, a list of token ids, or a list of lists of token ids",
    }),
    /** Legacy API: how many top alternatives to return per token, 0..5. */
    logprobs: nullish(z.number().int().min(0).max(5)),
    echo: nullish(z.literal(false, { error: "echo is not supported" })),
    best_of: nullish(z.literal(1, { error: "only best_of = 1 is supported" })),
    suffix: nullish(z.null({ error: "suffix is not supported" })),
  })
  .superRefine((req, ctx) => refuseUnimplementedCompletion(req, ctx));
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

export const FinishReasonSchema = z.enum(["stop", "length", "content_filter", "tool_calls"]);
export type FinishReason = z.infer<typeof FinishReasonSchema>;

export const UsageSchema = z.strictObject({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  total_tokens: z.number().int().nonnegative(),
});
export type Usage = z.infer<typeof UsageSchema>;

const TopLogprobSchema = z.strictObject({
  token: z.string(),
  logprob: z.number(),
  bytes: z.array(z.number().int()).nullable(),
});

export const ChatTokenLogprobSchema = TopLogprobSchema.extend({ top_logprobs: z.array(TopLogprobSchema) });

export const ChatLogprobsSchema = z.strictObject({
  content: z.array(ChatTokenLogprobSchema).nullable(),
  refusal: z.array(ChatTokenLogprobSchema).nullable().optional(),
});

/**
 * vLLM's token-id fields, present when the request sets return_token_ids (and `token_ids` always when the
 * runner serves a model without a tokenizer): chat puts the prompt's ids on the response, completions on
 * each choice; streams send the prompt's ids in the first chunk and each chunk's new ids in `token_ids`.
 */
const promptTokenIds = { prompt_token_ids: tokenIds.optional() };
const completionTokenIds = { token_ids: tokenIds.optional() };

export const ChatCompletionSchema = z.strictObject({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().nullable().optional(),
  ...promptTokenIds,
  choices: z.array(
    z.strictObject({
      index: z.number().int().nonnegative(),
      message: z.strictObject({
        role: z.literal("assistant"),
        content: z.string().nullable(),
        refusal: z.string().nullable().optional(),
      }),
      logprobs: ChatLogprobsSchema.nullable(),
      finish_reason: FinishReasonSchema,
      ...completionTokenIds,
    }),
  ),
  usage: UsageSchema,
});
export type ChatCompletion = z.infer<typeof ChatCompletionSchema>;

export const ChatCompletionChunkSchema = z.strictObject({
  id: z.string(),
  object: z.literal("chat.completion.chunk"),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().nullable().optional(),
  ...promptTokenIds,
  choices: z.array(
    z.strictObject({
      index: z.number().int().nonnegative(),
      delta: z.strictObject({
        role: z.literal("assistant").optional(),
        content: z.string().nullable().optional(),
      }),
      logprobs: ChatLogprobsSchema.nullable().optional(),
      finish_reason: FinishReasonSchema.nullable(),
      ...completionTokenIds,
    }),
  ),
  /** Present (null) on every chunk when include_usage is set; the final chunk has no choices and the usage. */
  usage: UsageSchema.nullable().optional(),
});
export type ChatCompletionChunk = z.infer<typeof ChatCompletionChunkSchema>;

export const CompletionLogprobsSchema = z.strictObject({
  tokens: z.array(z.string()),
  token_logprobs: z.array(z.number().nullable()),
  top_logprobs: z.array(z.record(z.string(), z.number()).nullable()),
  text_offset: z.array(z.number().int()),
});

const CompletionChoiceSchema = z.strictObject({
  index: z.number().int().nonnegative(),
  text: z.string(),
  logprobs: CompletionLogprobsSchema.nullable(),
  finish_reason: FinishReasonSchema.nullable(),
  ...promptTokenIds,
  ...completionTokenIds,
});

export const CompletionSchema = z.strictObject({
  id: z.string(),
  object: z.literal("text_completion"),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().nullable().optional(),
  choices: z.array(CompletionChoiceSchema.extend({ finish_reason: FinishReasonSchema })),
  usage: UsageSchema,
});
export type Completion = z.infer<typeof CompletionSchema>;

/** Streamed legacy completions reuse the object type "text_completion", with finish_reason null until the end. */
export const CompletionChunkSchema = z.strictObject({
  id: z.string(),
  object: z.literal("text_completion"),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().nullable().optional(),
  choices: z.array(CompletionChoiceSchema),
  usage: UsageSchema.nullable().optional(),
});
export type CompletionChunk = z.infer<typeof CompletionChunkSchema>;

export const ModelObjectSchema = z.strictObject({
  id: z.string(),
  object: z.literal("model"),
  created: z.number().int(),
  owned_by: z.string(),
  /** vLLM's convention for LoRA models: the base model they run on. */
  parent: z.string().nullable().optional(),
  /**
   * Not OpenAI: what the edge resolves this id to. A route (A/B experiment) and a base both have no single
   * parent, so `parent` alone cannot tell a client which one it is calling.
   */
  lora_edge: z.strictObject({ kind: z.enum(["base", "adapter", "route"]) }).optional(),
});
export type ModelObject = z.infer<typeof ModelObjectSchema>;

export const ModelListSchema = z.strictObject({
  object: z.literal("list"),
  data: z.array(ModelObjectSchema),
});
export type ModelList = z.infer<typeof ModelListSchema>;

export const ErrorEnvelopeSchema = z.strictObject({
  error: z.strictObject({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string().nullable(),
    /** Not OpenAI: every problem, when several were collected (e.g. adapter validation). */
    details: z.array(z.string()).optional(),
  }),
});
export type ErrorEnvelope = z.infer<typeof ErrorEnvelopeSchema>;

/** What a request asks of the sampler, with OpenAI's defaults filled in. */
export interface SamplingParams {
  maxTokens: number | null;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | null;
  stop: string[];
  presencePenalty: number;
  frequencyPenalty: number;
}

export function samplingParams(req: ChatCompletionRequest | CompletionRequest): SamplingParams {
  const maxCompletion = typeof req.max_completion_tokens === "number" ? req.max_completion_tokens : null;
  return {
    maxTokens: maxCompletion ?? req.max_tokens ?? null,
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? 1,
    topK: req.top_k ?? 0,
    seed: req.seed ?? null,
    stop: req.stop == null ? [] : typeof req.stop === "string" ? [req.stop] : req.stop,
    presencePenalty: req.presence_penalty ?? 0,
    frequencyPenalty: req.frequency_penalty ?? 0,
  };
}

/** The text of a message's content: parts are joined without separators, as OpenAI does. */
export function messageText(message: ChatMessage): string {
  if (message.content === null) return "";
  if (typeof message.content === "string") return message.content;
  // the part schema refuses a text part without text, so `?? ""` never fires on a parsed message
  return message.content.map((p) => p.text ?? "").join("");
}
