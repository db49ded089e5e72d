// OpenAI-compatible wire shapes (chat completions, legacy completions, models, errors). Requests are loose:
// OpenAI SDKs send fields we do not read, and they must pass. Responses are strict: we produce them.
// Features we do not serve are refused by name (n > 1, echo, non-text content, and every field listed in
// openai-refusals.ts) rather than ignored; README.md's "OpenAI and vLLM request fields" lists them.
import { z } from "zod";
import { refuseUnimplementedChat, refuseUnimplementedCompletion } from "./openai-refusals.ts";
import { contentChars, REQUEST_BOUNDS } from "./request-bounds.ts";

const nullish = <T extends z.ZodType>(schema: T) => schema.nullish();

const tokenIds = z.array(z.number().int().nonnegative());

/** The stream_options both endpoints take: vLLM's continuous_usage_stats puts usage on every chunk. */
const streamOptions = nullish(
  z.looseObject({ include_usage: nullish(z.boolean()), continuous_usage_stats: nullish(z.boolean()) }),
);

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
    z.union(
      [
        z.string(),
        z
          .array(z.string())
          .max(REQUEST_BOUNDS.maxStop, `must hold at most ${REQUEST_BOUNDS.maxStop} stop sequences`),
      ],
      { error: `must be a string or a list of at most ${REQUEST_BOUNDS.maxStop} strings` },
    ),
  ),
  n: nullish(z.literal(1, { error: "only n = 1 is supported" })),
  stream: nullish(z.boolean()),
  stream_options: streamOptions,
  user: z.string().max(512).optional(),
  presence_penalty: nullish(z.number().min(-2).max(2)),
  frequency_penalty: nullish(z.number().min(-2).max(2)),
  /** Not OpenAI: vLLM's option to return the prompt's and the completion's token ids beside the text. */
  return_token_ids: nullish(z.boolean()),
  /** OpenAI's: token id (a decimal string) → bias in [-100, 100], added to that logit before sampling. */
  logit_bias: nullish(z.record(z.string(), z.number().min(-100).max(100))),
  /** The rest are vLLM's sampling extensions, with vLLM's meaning (README.md, "OpenAI and vLLM request fields"). */
  min_tokens: nullish(z.number().int().min(0)),
  ignore_eos: nullish(z.boolean()),
  repetition_penalty: nullish(z.number().gt(0)),
  min_p: nullish(z.number().min(0).max(1)),
  stop_token_ids: nullish(
    tokenIds.max(
      REQUEST_BOUNDS.maxStopTokenIds,
      `must hold at most ${REQUEST_BOUNDS.maxStopTokenIds} token ids`,
    ),
  ),
  include_stop_str_in_output: nullish(z.boolean()),
  skip_special_tokens: nullish(z.boolean()),
  /** Logprobs of every prompt token with this many alternatives (vLLM's max_logprobs is 20). */
  prompt_logprobs: nullish(z.number().int().min(0).max(20)),
};

/** vLLM's token-id spelling of logit_bias keys: a non-negative decimal integer. */
const TOKEN_ID_KEY = /^(0|[1-9][0-9]*)$/;

/** Rules between fields shared by both endpoints; `maxTokens` names the field that set the limit. */
function refineSampling(
  req: {
    logit_bias?: Record<string, number> | null;
    stop?: string | string[] | null;
    min_tokens?: number | null;
    prompt_logprobs?: number | null;
    stream?: boolean | null;
  },
  maxTokens: { field: string; value: number } | null,
  ctx: z.RefinementCtx,
): void {
  const biased = Object.keys(req.logit_bias ?? {});
  if (biased.length > REQUEST_BOUNDS.maxLogitBias) {
    ctx.addIssue({
      code: "custom",
      path: ["logit_bias"],
      message: `must hold at most ${REQUEST_BOUNDS.maxLogitBias} entries`,
      input: biased.length,
    });
    return;
  }
  const stops = req.stop == null ? [] : typeof req.stop === "string" ? [req.stop] : req.stop;
  stops.forEach((stop, i) => {
    if (stop.length > REQUEST_BOUNDS.maxStopChars) {
      ctx.addIssue({
        code: "custom",
        path: typeof req.stop === "string" ? ["stop"] : ["stop", i],
        message: `must be at most ${REQUEST_BOUNDS.maxStopChars} characters`,
        input: stop.length,
      });
    }
  });
  for (const key of biased) {
    if (!TOKEN_ID_KEY.test(key)) {
      ctx.addIssue({
        code: "custom",
        path: ["logit_bias", key],
        message: "keys must be token ids (non-negative integers as strings)",
        input: key,
      });
    }
  }
  if (req.min_tokens != null && maxTokens !== null && req.min_tokens > maxTokens.value) {
    ctx.addIssue({
      code: "custom",
      path: ["min_tokens"],
      message: `must be <= ${maxTokens.field} (${maxTokens.value})`,
      input: req.min_tokens,
    });
  }
  // vLLM refuses this pair too: prompt logprobs arrive whole, with the finished response
  if (req.prompt_logprobs != null && req.stream === true) {
    ctx.addIssue({
      code: "custom",
      path: ["prompt_logprobs"],
      message: "is not available with stream: true; send the request without stream",
      input: req.prompt_logprobs,
    });
  }
}

/** Template variables a request sets through its own fields, so chat_template_kwargs cannot set them. */
export const RESERVED_TEMPLATE_KWARGS = [
  "messages",
  "add_generation_prompt",
  "continue_final_message",
  "tools",
  "documents",
];

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
    .union(
      [
        z.string(),
        z
          .array(TextContentPartSchema)
          .max(
            REQUEST_BOUNDS.maxContentParts,
            `must hold at most ${REQUEST_BOUNDS.maxContentParts} content parts`,
          ),
      ],
      { error: `must be a string or a list of at most ${REQUEST_BOUNDS.maxContentParts} text parts` },
    )
    .nullable(),
  name: z.string().optional(),
  tool_call_id: z.string().optional(),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

/**
 * A chat's messages, their count bounded before any is parsed (zod checks an array's length first), so a
 * hundred thousand messages answer 400 at once.
 */
export const MessagesSchema = z
  .array(ChatMessageSchema)
  .min(1, "must hold at least one message")
  .max(REQUEST_BOUNDS.maxMessages, `must hold at most ${REQUEST_BOUNDS.maxMessages} messages`);

/** Refuses chat content over the character bound and more template variables than the bound. */
export function refineChatBounds(
  req: {
    messages: ChatMessage[];
    chat_template_kwargs?: Record<string, unknown> | null | undefined;
  },
  ctx: z.RefinementCtx,
): void {
  const chars = contentChars(req.messages);
  if (chars > REQUEST_BOUNDS.maxPromptChars) {
    ctx.addIssue({
      code: "custom",
      path: ["messages"],
      message: `must hold at most ${REQUEST_BOUNDS.maxPromptChars} characters of content in all`,
      input: chars,
    });
  }
  const kwargs = Object.keys(req.chat_template_kwargs ?? {}).length;
  if (kwargs > REQUEST_BOUNDS.maxTemplateKwargs) {
    ctx.addIssue({
      code: "custom",
      path: ["chat_template_kwargs"],
      message: `must hold at most ${REQUEST_BOUNDS.maxTemplateKwargs} variables`,
      input: kwargs,
    });
  }
}

export const ChatCompletionRequestSchema = z
  .looseObject({
    ...samplingFields,
    messages: MessagesSchema,
    max_completion_tokens: nullish(z.number().int().positive()),
    logprobs: nullish(z.boolean()),
    top_logprobs: nullish(z.number().int().min(0).max(20)),
    /** Not OpenAI: vLLM's switch for the template's generation prompt, off to continue an assistant turn. */
    add_generation_prompt: nullish(z.boolean()),
    /** Not OpenAI: vLLM's extra chat template variables (e.g. enable_thinking). */
    chat_template_kwargs: nullish(z.record(z.string(), z.unknown())),
    /** Not OpenAI: vLLM's "prefill": the last (assistant) message is left open and continued. */
    continue_final_message: nullish(z.boolean()),
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
    const maxTokens =
      req.max_completion_tokens != null
        ? { field: "max_completion_tokens", value: req.max_completion_tokens }
        : req.max_tokens != null
          ? { field: "max_tokens", value: req.max_tokens }
          : null;
    refineSampling(req, maxTokens, ctx);
    refineChatBounds(req, ctx);
    for (const key of Object.keys(req.chat_template_kwargs ?? {})) {
      if (RESERVED_TEMPLATE_KWARGS.includes(key)) {
        ctx.addIssue({
          code: "custom",
          path: ["chat_template_kwargs", key],
          message: "is set by the request's own field, not by chat_template_kwargs",
          input: req.chat_template_kwargs?.[key],
        });
      }
    }
    if (req.continue_final_message === true) {
      // vLLM refuses the pair: a generation prompt opens a new turn, which is not continuing the last one
      if (req.add_generation_prompt === true) {
        ctx.addIssue({
          code: "custom",
          path: ["continue_final_message"],
          message: "cannot be combined with add_generation_prompt: true (leave add_generation_prompt out)",
          input: req.continue_final_message,
        });
      }
      const last = req.messages.at(-1);
      if (last !== undefined && last.role !== "assistant") {
        ctx.addIssue({
          code: "custom",
          path: ["continue_final_message"],
          message: `continues the last message, which must be the assistant's; the last role is "${last.role}"`,
          input: req.continue_final_message,
        });
      }
    }
    refuseUnimplementedChat(req, ctx);
  });
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

/** A completion's prompts: how many, how many ids each, how many characters in all (REQUEST_BOUNDS). */
function refinePromptBounds(prompt: string | string[] | number[] | number[][], ctx: z.RefinementCtx): void {
  const { maxPrompts, maxPromptChars, maxPromptTokenIds } = REQUEST_BOUNDS;
  const nested = Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] !== "number";
  if (nested && prompt.length > maxPrompts) {
    ctx.addIssue({
      code: "custom",
      path: ["prompt"],
      message: `must hold at most ${maxPrompts} prompts`,
      input: prompt.length,
    });
    return;
  }
  const parts: (string | number[])[] =
    typeof prompt === "string" ? [prompt] : nested ? (prompt as (string | number[])[]) : [prompt as number[]];
  let chars = 0;
  parts.forEach((part, i) => {
    if (typeof part === "string") chars += part.length;
    else if (part.length > maxPromptTokenIds) {
      ctx.addIssue({
        code: "custom",
        path: nested ? ["prompt", i] : ["prompt"],
        message: `must hold at most ${maxPromptTokenIds} token ids`,
        input: part.length,
      });
    }
  });
  if (chars > maxPromptChars) {
    ctx.addIssue({
      code: "custom",
      path: ["prompt"],
      message: `must hold at most ${maxPromptChars} characters in all`,
      input: chars,
    });
  }
}

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
  .superRefine((req, ctx) => {
    refineSampling(req, req.max_tokens != null ? { field: "max_tokens", value: req.max_tokens } : null, ctx);
    refinePromptBounds(req.prompt, ctx);
    refuseUnimplementedCompletion(req, ctx);
  });
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

/**
 * vLLM's prompt_logprobs: per prompt token, null for the first (nothing precedes it), else token id → its
 * logprob, rank and text, holding the actual token first and the `prompt_logprobs` most likely ones. Chat puts
 * it on the response, completions on each choice, as vLLM does.
 */
export const PromptLogprobsSchema = z.array(
  z
    .record(
      z.string(),
      z.strictObject({
        logprob: z.number(),
        rank: z.number().int().positive().nullable(),
        decoded_token: z.string().nullable(),
      }),
    )
    .nullable(),
);
export type PromptLogprobs = z.infer<typeof PromptLogprobsSchema>;
const promptLogprobs = { prompt_logprobs: PromptLogprobsSchema.nullable().optional() };

export const ChatCompletionSchema = z.strictObject({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().nullable().optional(),
  ...promptTokenIds,
  ...promptLogprobs,
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
  /**
   * Present on every chunk when include_usage is set: null, or the usage so far with vLLM's
   * continuous_usage_stats; the final chunk has no choices and the usage.
   */
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
  ...promptLogprobs,
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

/**
 * Sampling defaults a model ships in its generation_config.json: they apply where the request leaves the
 * field out (vLLM's `--generation-config auto`), before OpenAI's and vLLM's own defaults.
 */
export interface SamplingDefaults {
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  minP?: number;
}

export function samplingParams(
  req: ChatCompletionRequest | CompletionRequest,
  defaults: SamplingDefaults = {},
): SamplingParams {
  const maxCompletion = typeof req.max_completion_tokens === "number" ? req.max_completion_tokens : null;
  return {
    maxTokens: maxCompletion ?? req.max_tokens ?? null,
    temperature: req.temperature ?? defaults.temperature ?? 1,
    topP: req.top_p ?? defaults.topP ?? 1,
    topK: req.top_k ?? defaults.topK ?? 0,
    seed: req.seed ?? null,
    stop: req.stop == null ? [] : typeof req.stop === "string" ? [req.stop] : req.stop,
    presencePenalty: req.presence_penalty ?? 0,
    frequencyPenalty: req.frequency_penalty ?? 0,
  };
}

/** vLLM's sampling and decoding extensions of a request, with vLLM's defaults filled in. */
export interface VllmSamplingParams {
  /** Token id → bias. */
  logitBias: Map<number, number>;
  minTokens: number;
  ignoreEos: boolean;
  repetitionPenalty: number;
  minP: number;
  stopTokenIds: number[];
  includeStopStrInOutput: boolean;
  skipSpecialTokens: boolean;
  /** Alternatives per prompt token; null computes no prompt logprobs. */
  promptLogprobs: number | null;
}

export function vllmSamplingParams(
  req: ChatCompletionRequest | CompletionRequest,
  defaults: SamplingDefaults = {},
): VllmSamplingParams {
  return {
    logitBias: new Map(Object.entries(req.logit_bias ?? {}).map(([id, bias]) => [Number(id), bias])),
    minTokens: req.min_tokens ?? 0,
    ignoreEos: req.ignore_eos ?? false,
    repetitionPenalty: req.repetition_penalty ?? defaults.repetitionPenalty ?? 1,
    minP: req.min_p ?? defaults.minP ?? 0,
    stopTokenIds: req.stop_token_ids ?? [],
    includeStopStrInOutput: req.include_stop_str_in_output ?? false,
    skipSpecialTokens: req.skip_special_tokens ?? true,
    promptLogprobs: req.prompt_logprobs ?? null,
  };
}

/** The text of a message's content: parts are joined without separators, as OpenAI does. */
export function messageText(message: ChatMessage): string {
  if (message.content === null) return "";
  if (typeof message.content === "string") return message.content;
  // the part schema refuses a text part without text, so `?? ""` never fires on a parsed message
  return message.content.map((p) => p.text ?? "").join("");
}
