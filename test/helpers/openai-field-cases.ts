// The OpenAI and vLLM request fields the API handles, each with values that parse and values refused with a
// named `param`, per endpoint. Written by hand, not derived from openai-refusals.ts, so the unit, workers,
// runner and README tests check the refusal list against an independent statement of what it should be.

export type Endpoint = "chat" | "completions";

export interface FieldValues {
  /** Values that parse: for a refused field, the neutral ones a client sends when it does not use it. */
  accepted: readonly unknown[];
  /** Values refused with 400 and `param`. */
  refused: readonly unknown[];
}

export interface FieldCase {
  /** As README.md's table names it: a request key, a dotted key, or `messages[].content[].type`. */
  field: string;
  status: "supported" | "refused";
  chat?: FieldValues;
  completions?: FieldValues;
  /** What `error.param` names for a refused value; the field by default. */
  param?: string;
  /** The request fields that carry a value; by default the field itself (a dotted name nests). */
  body?: (value: unknown) => Record<string, unknown>;
}

export const CHAT_BASE = {
  model: "demo-llama",
  messages: [{ role: "user", content: "hi" }],
  max_tokens: 1,
} as const;
export const COMPLETION_BASE = { model: "demo-llama", prompt: "hi", max_tokens: 1 } as const;

const values = (accepted: readonly unknown[], refused: readonly unknown[] = []): FieldValues => ({
  accepted,
  refused,
});

function supported(field: string, chat: FieldValues | null, completions: FieldValues | null): FieldCase {
  return { field, status: "supported", ...(chat ? { chat } : {}), ...(completions ? { completions } : {}) };
}

/** A refused field taken by both endpoints, with what it refuses and what passes. */
const refusedBoth = (field: string, refused: unknown[], accepted: unknown[] = [null]): FieldCase => ({
  field,
  status: "refused",
  chat: values(accepted, refused),
  completions: values(accepted, refused),
});
const refusedChat = (field: string, refused: unknown[], accepted: unknown[] = [null]): FieldCase => ({
  field,
  status: "refused",
  chat: values(accepted, refused),
});
const refusedCompletions = (field: string, refused: unknown[], accepted: unknown[] = [null]): FieldCase => ({
  field,
  status: "refused",
  completions: values(accepted, refused),
});

export const FIELD_CASES: readonly FieldCase[] = [
  // implemented
  supported("model", values(["demo-llama"], [""]), values(["demo-llama"], [""])),
  supported("messages", values([[{ role: "user", content: [{ type: "text", text: "hi" }] }]], [[]]), null),
  supported("prompt", null, values(["hi", ["a", "b"], [1, 2, 3], [[1], [2]]], [[1.5]])),
  supported("max_tokens", values([8, null], [0]), values([8, null], [0])),
  supported("max_completion_tokens", values([8, null], [0]), null),
  supported("temperature", values([0, 1.5], [2.5]), values([0, 1.5], [2.5])),
  supported("top_p", values([0.9, 1], [0]), values([0.9, 1], [0])),
  supported("top_k", values([0, 40], [-1]), values([0, 40], [-1])),
  supported("seed", values([7], [1.5]), values([7], [1.5])),
  supported("stop", values(["\n", ["a", "b"]], [["a", "b", "c", "d", "e"]]), values(["\n"], [5])),
  supported("presence_penalty", values([0.5], [3]), values([0.5], [3])),
  supported("frequency_penalty", values([-0.5], [-3]), values([-0.5], [-3])),
  supported("stream", values([true, false], ["yes"]), values([true, false], ["yes"])),
  supported("stream_options", values([{ include_usage: true }]), values([{ include_usage: true }])),
  supported("user", values(["subject-1"], [7]), values(["subject-1"], [7])),
  supported("logprobs", values([true, false], [3]), values([0, 5], [6])),
  {
    ...supported("top_logprobs", values([0, 20], [21]), null),
    body: (v) => ({ logprobs: true, top_logprobs: v }),
  },
  supported("return_token_ids", values([true, false], ["yes"]), values([true, false], ["yes"])),
  supported("add_generation_prompt", values([true, false], ["no"]), null),
  {
    ...supported(
      "stream_options.continuous_usage_stats",
      values([true, false, null], ["yes"]),
      values([true, false, null], ["yes"]),
    ),
    body: (v) => ({ stream: true, stream_options: { include_usage: true, continuous_usage_stats: v } }),
  },
  {
    ...supported(
      "logit_bias",
      values([{ "50": 100 }, { "50": -100, "7": 2.5 }, {}, null], [{ "50": 101 }, { "50": -100.5 }]),
      values([{ "50": 100 }, {}, null], [{ "50": 101 }]),
    ),
    param: "logit_bias.50",
  },
  // the base requests' max_tokens is 1, and min_tokens may not exceed it
  supported("min_tokens", values([0, 1, null], [-1, 1.5, 2]), values([0, 1, null], [-1, 1.5, 2])),
  supported("ignore_eos", values([true, false, null], ["yes"]), values([true, false, null], ["yes"])),
  supported("repetition_penalty", values([1, 1.2, 0.5, null], [0, -1]), values([1, 1.2, null], [0])),
  supported("min_p", values([0, 0.1, 1, null], [1.5, -0.1]), values([0, 0.1, null], [1.5])),
  supported("stop_token_ids", values([[2], [], null], ["2", 2]), values([[2, 3], [], null], [2])),
  supported(
    "include_stop_str_in_output",
    values([true, false, null], ["yes"]),
    values([true, false, null], ["yes"]),
  ),
  supported("skip_special_tokens", values([true, false, null], ["no"]), values([true, false, null], ["no"])),
  supported("prompt_logprobs", values([0, 5, 20, null], [21, -1]), values([0, 5, null], [21, -1])),
  supported("chat_template_kwargs", values([{ enable_thinking: false }, {}, null], ["x"]), null),
  {
    ...supported("continue_final_message", values([true, false, null], ["yes"]), null),
    // only an assistant message can be continued
    body: (v) => ({
      messages: [
        { role: "user", content: "hi" },
        { role: "assistant", content: "Hel" },
      ],
      continue_final_message: v,
    }),
  },

  // refused by the schemas' own shapes (openai.ts)
  refusedBoth("n", [2], [1, null]),
  refusedBoth("best_of", [3], [1, null]),
  refusedBoth("echo", [true], [false, null]),
  refusedCompletions("suffix", ["tail"]),
  {
    ...refusedChat("messages[].content[].type", ["image_url", "input_audio", "file"], ["text"]),
    param: "messages[0].content[1].type",
    body: (type) => ({
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "look: " },
            type === "text" ? { type, text: "hi" } : { type, [type as string]: { data: "AAAA" } },
          ],
        },
      ],
    }),
  },

  // refused by openai-refusals.ts
  refusedChat("tools", [[{ type: "function", function: { name: "f", parameters: {} } }]], [[], null]),
  refusedChat("tool_choice", ["auto", "required", { type: "function", function: { name: "f" } }], ["none"]),
  refusedChat("functions", [[{ name: "f", parameters: {} }]], [[]]),
  refusedChat("function_call", ["auto", { name: "f" }], ["none"]),
  refusedChat("parallel_tool_calls", [true], [false, null]),
  {
    ...refusedBoth(
      "response_format",
      [{ type: "json_object" }, { type: "json_schema", json_schema: { name: "x", schema: {} } }],
      [{ type: "text" }, null],
    ),
    param: "response_format.type",
  },
  refusedChat("audio", [{ voice: "alloy", format: "wav" }]),
  refusedChat("modalities", [["text", "audio"]], [["text"], null]),
  refusedChat("prediction", [{ type: "content", content: "draft" }]),
  refusedChat("web_search_options", [{}]),
  refusedBoth("lora", ["support@prod"]),
  refusedBoth("guided_json", [{ type: "object" }]),
  refusedBoth("guided_regex", ["[0-9]+"]),
  refusedBoth("guided_choice", [["yes", "no"]]),
  refusedBoth("guided_grammar", ['root ::= "a"']),
  refusedBoth("structural_tag", ['{"type": "structural_tag"}']),
  refusedBoth("guided_decoding_backend", ["xgrammar"]),
  refusedBoth("guided_whitespace_pattern", ["\\s*"]),
  refusedBoth("structured_outputs", [{ choice: ["yes", "no"] }]),
  refusedBoth("use_beam_search", [true], [false, null]),
  refusedBoth("length_penalty", [0.5], [1, null]),
  refusedBoth("early_stopping", [true], [false, null]),
  refusedBoth("truncate_prompt_tokens", [16, -1]),
  refusedBoth("bad_words", [["darn"]], [[], null]),
  refusedBoth("allowed_token_ids", [[1, 2, 3]]),
  refusedBoth("logits_processors", [["my.module.Processor"]], [[], null]),
  refusedChat("documents", [[{ title: "a", text: "b" }]]),
  refusedChat("chat_template", ["{{ messages }}"]),
  refusedChat("mm_processor_kwargs", [{ num_crops: 4 }], [{}, null]),
  refusedBoth("priority", [5], [0, null]),
  refusedBoth("request_id", ["my-id"]),
  refusedBoth("cache_salt", ["tenant-a"]),
  refusedBoth("return_tokens_as_token_ids", [true], [false, null]),
  refusedBoth("spaces_between_special_tokens", [false, true]),
  refusedCompletions("prompt_embeds", ["AAAA"]),
  refusedBoth("kv_transfer_params", [{ do_remote_decode: true }]),
  refusedBoth("vllm_xargs", [{ k: 1 }], [{}, null]),
];

function nested(field: string, value: unknown): Record<string, unknown> {
  const keys = field.split(".");
  let out: unknown = value;
  for (const key of keys.reverse()) out = { [key]: out };
  return out as Record<string, unknown>;
}

/** A request for `endpoint` carrying `value` in the case's field, on top of a minimal valid request. */
export function requestFor(endpoint: Endpoint, c: FieldCase, value: unknown): Record<string, unknown> {
  const base = endpoint === "chat" ? CHAT_BASE : COMPLETION_BASE;
  return { ...base, ...(c.body ? c.body(value) : nested(c.field, value)) };
}

export function paramOf(c: FieldCase): string {
  return c.param ?? c.field;
}

/** Every (endpoint, case, value) refused, for tests that send each over HTTP. */
export function refusedRequests(): { endpoint: Endpoint; c: FieldCase; value: unknown }[] {
  const out: { endpoint: Endpoint; c: FieldCase; value: unknown }[] = [];
  for (const c of FIELD_CASES) {
    for (const endpoint of ["chat", "completions"] as const) {
      for (const value of c[endpoint]?.refused ?? []) out.push({ endpoint, c, value });
    }
  }
  return out;
}
