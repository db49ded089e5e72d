// OpenAI and vLLM request fields that neither the edge nor the runner implements. Sent with a value that asks
// for the feature, each is refused by name (400 invalid_request, `param` = the field) instead of being
// silently ignored; the value a client sends when it does not use the feature (null, false, [], {}, "none",
// the default) passes, because SDKs and vLLM clients send those unasked. Shared by the edge and the runner
// through the request schemas in openai.ts, so the rule lives once. This module only refuses: it never
// rewrites a request.
import type { z } from "zod";

/** A value that asks for nothing: what a client sends when it does not use the feature. */
type Neutral = (value: unknown) => boolean;

const absent: Neutral = (v) => v === null || v === undefined;
const falsy: Neutral = (v) => absent(v) || v === false;
const emptyList: Neutral = (v) => absent(v) || (Array.isArray(v) && v.length === 0);
const emptyObject: Neutral = (v) => absent(v) || (isObject(v) && Object.keys(v).length === 0);
const oneOf =
  (...values: unknown[]): Neutral =>
  (v) =>
    absent(v) || values.includes(v);

export type Endpoint = "chat" | "completions";

export interface Refusal {
  /** The request field; a dotted name (`stream_options.<key>`) reaches inside an object. */
  field: string;
  endpoints: readonly Endpoint[];
  neutral: Neutral;
  rule: string;
  /** Where inside the value the refused choice sits, so `param` names it (`response_format.type`). */
  at?: (value: unknown) => readonly string[];
}

const BOTH: readonly Endpoint[] = ["chat", "completions"];
const CHAT: readonly Endpoint[] = ["chat"];
const COMPLETIONS: readonly Endpoint[] = ["completions"];

const ADAPTER_BY_MODEL = 'is not supported; name the adapter in model ("name", "name@3" or "name@alias")';
const GUIDED = "guided decoding (structured output) is not supported";
const BEAM = "beam search is not supported";
const TOOLS = "tool calling is not supported";

/**
 * Every field here is one we do not implement. Implementing a field means deleting its entry here and marking
 * it supported in README.md ("OpenAI and vLLM request fields") and in test/helpers/openai-field-cases.ts; the
 * unit tests fail until all three agree.
 */
export const REFUSED_FIELDS: readonly Refusal[] = [
  // OpenAI: tool calling, structured output, multimodal output, several choices, hosted tools
  { field: "tools", endpoints: CHAT, neutral: emptyList, rule: TOOLS },
  {
    field: "tool_choice",
    endpoints: CHAT,
    neutral: oneOf("none"),
    rule: `only "none" is supported: ${TOOLS}`,
  },
  { field: "functions", endpoints: CHAT, neutral: emptyList, rule: TOOLS },
  {
    field: "function_call",
    endpoints: CHAT,
    neutral: oneOf("none"),
    rule: `only "none" is supported: ${TOOLS}`,
  },
  { field: "parallel_tool_calls", endpoints: CHAT, neutral: falsy, rule: TOOLS },
  {
    field: "response_format",
    endpoints: BOTH,
    neutral: (v) => absent(v) || (isObject(v) && v.type === "text"),
    rule: 'only "text" is supported: structured output (json_object, json_schema) is not',
    at: (v) => (isObject(v) && "type" in v ? ["type"] : []),
  },
  { field: "audio", endpoints: CHAT, neutral: absent, rule: "audio output is not supported" },
  {
    field: "modalities",
    endpoints: CHAT,
    neutral: (v) => absent(v) || (Array.isArray(v) && v.every((m) => m === "text")),
    rule: 'only ["text"] is supported',
  },
  { field: "prediction", endpoints: CHAT, neutral: absent, rule: "predicted outputs are not supported" },
  { field: "web_search_options", endpoints: CHAT, neutral: absent, rule: "web search is not supported" },
  // vLLM's chat endpoint takes these too; the completions endpoint refuses them in its schema (openai.ts)
  { field: "echo", endpoints: CHAT, neutral: falsy, rule: "is not supported" },
  { field: "best_of", endpoints: CHAT, neutral: oneOf(1), rule: "only best_of = 1 is supported" },
  // Workers AI's LoRA field: adapters are routed by model here
  { field: "lora", endpoints: BOTH, neutral: absent, rule: ADAPTER_BY_MODEL },

  // vLLM: guided decoding, beam search and the rest of its extensions
  { field: "guided_json", endpoints: BOTH, neutral: absent, rule: GUIDED },
  { field: "guided_regex", endpoints: BOTH, neutral: absent, rule: GUIDED },
  { field: "guided_choice", endpoints: BOTH, neutral: absent, rule: GUIDED },
  { field: "guided_grammar", endpoints: BOTH, neutral: absent, rule: GUIDED },
  { field: "structural_tag", endpoints: BOTH, neutral: absent, rule: GUIDED },
  { field: "guided_decoding_backend", endpoints: BOTH, neutral: absent, rule: GUIDED },
  { field: "guided_whitespace_pattern", endpoints: BOTH, neutral: absent, rule: GUIDED },
  { field: "structured_outputs", endpoints: BOTH, neutral: absent, rule: GUIDED },
  { field: "use_beam_search", endpoints: BOTH, neutral: falsy, rule: BEAM },
  { field: "length_penalty", endpoints: BOTH, neutral: oneOf(1), rule: BEAM },
  { field: "early_stopping", endpoints: BOTH, neutral: falsy, rule: BEAM },
  {
    field: "truncate_prompt_tokens",
    endpoints: BOTH,
    neutral: absent,
    rule: "is not supported; send a prompt that fits the model's context",
  },
  { field: "bad_words", endpoints: BOTH, neutral: emptyList, rule: "is not supported" },
  { field: "allowed_token_ids", endpoints: BOTH, neutral: absent, rule: "is not supported" },
  { field: "logits_processors", endpoints: BOTH, neutral: emptyList, rule: "is not supported" },
  { field: "documents", endpoints: CHAT, neutral: absent, rule: "is not supported" },
  {
    field: "chat_template",
    endpoints: CHAT,
    neutral: absent,
    rule: "is not supported; the runner renders the model's own chat template",
  },
  {
    field: "mm_processor_kwargs",
    endpoints: CHAT,
    neutral: emptyObject,
    rule: "multimodal input is not supported",
  },
  {
    field: "priority",
    endpoints: BOTH,
    neutral: oneOf(0),
    rule: "is not supported: requests are served in arrival order",
  },
  {
    field: "request_id",
    endpoints: BOTH,
    neutral: absent,
    rule: "is not supported; send the x-request-id header",
  },
  { field: "cache_salt", endpoints: BOTH, neutral: absent, rule: "is not supported" },
  {
    field: "return_tokens_as_token_ids",
    endpoints: BOTH,
    neutral: falsy,
    rule: "is not supported; return_token_ids returns the ids beside the text",
  },
  { field: "spaces_between_special_tokens", endpoints: BOTH, neutral: absent, rule: "is not supported" },
  {
    field: "prompt_embeds",
    endpoints: COMPLETIONS,
    neutral: absent,
    rule: "is not supported; send the prompt as text or token ids",
  },
  { field: "kv_transfer_params", endpoints: BOTH, neutral: absent, rule: "is not supported" },
  { field: "vllm_xargs", endpoints: BOTH, neutral: emptyObject, rule: "is not supported" },
];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function valueAt(req: Record<string, unknown>, path: readonly string[]): unknown {
  let value: unknown = req;
  for (const key of path) {
    if (!isObject(value)) return undefined;
    value = value[key];
  }
  return value;
}

function refuse(req: Record<string, unknown>, ctx: z.RefinementCtx, endpoint: Endpoint): void {
  for (const refusal of REFUSED_FIELDS) {
    if (!refusal.endpoints.includes(endpoint)) continue;
    const path = refusal.field.split(".");
    const value = valueAt(req, path);
    if (refusal.neutral(value)) continue;
    const inner = refusal.at?.(value) ?? [];
    ctx.addIssue({
      code: "custom",
      path: [...path, ...inner],
      message: refusal.rule,
      input: valueAt(req, [...path, ...inner]),
    });
  }
}

/** Adds one issue per refused field of a /v1/chat/completions request. */
export function refuseUnimplementedChat(req: Record<string, unknown>, ctx: z.RefinementCtx): void {
  refuse(req, ctx, "chat");
}

/** Adds one issue per refused field of a /v1/completions request. */
export function refuseUnimplementedCompletion(req: Record<string, unknown>, ctx: z.RefinementCtx): void {
  refuse(req, ctx, "completions");
}
