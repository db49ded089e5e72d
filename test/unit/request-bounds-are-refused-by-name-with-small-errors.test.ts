// The shared request bounds (src/contracts/request-bounds.ts) as the edge and the runner both parse them: each
// bound over its limit is refused naming the field, the rule and the value, one short problem instead of one
// per element, and an error body lists at most MAX_REPORTED_PROBLEMS problems plus a count.
import { describe, expect, it } from "vitest";
import { parseOrThrow, problemsError } from "../../src/contracts/issues.ts";
import { ChatCompletionRequestSchema, CompletionRequestSchema } from "../../src/contracts/openai.ts";
import { MAX_REPORTED_PROBLEMS, REQUEST_BOUNDS } from "../../src/contracts/request-bounds.ts";
import { DetokenizeRequestSchema, TokenizeRequestSchema } from "../../src/contracts/runner-vllm.ts";
import { AppError } from "../../src/errors.ts";
import type { z } from "zod";

function refusal(schema: z.ZodType, body: unknown): AppError {
  try {
    parseOrThrow(schema, body, "invalid_request", "body");
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error("the body was accepted");
}

const user = (content: unknown) => ({ role: "user", content });
const chat = (extra: Record<string, unknown>) => ({ model: "m", messages: [user("hi")], ...extra });
const B = REQUEST_BOUNDS;

describe("request bounds", () => {
  it("refuses 100,000 messages with one problem naming the bound, not one per message", () => {
    const messages = Array.from({ length: 100_000 }, () => user("hi"));
    const error = refusal(ChatCompletionRequestSchema, { model: "m", messages });
    expect(error.status).toBe(400);
    expect(error.param).toBe("messages");
    expect(error.message).toBe(
      `body: messages: must hold at most ${B.maxMessages} messages; got a list of 100000 items`,
    );
    expect(error.details).toHaveLength(1);
  });

  it("refuses 100,000 invalid messages the same way (the count is checked before the elements)", () => {
    const messages = Array.from({ length: 100_000 }, () => user(5));
    const error = refusal(ChatCompletionRequestSchema, { model: "m", messages });
    expect(error.message).toContain(`must hold at most ${B.maxMessages} messages`);
    expect(JSON.stringify(error.details).length).toBeLessThan(200);
  });

  it("accepts a request exactly at each bound", () => {
    const atBounds = {
      model: "m",
      messages: Array.from({ length: B.maxMessages }, (_, i) =>
        user(i === 0 ? "x".repeat(B.maxPromptChars - B.maxMessages + 1) : "x"),
      ),
      stop: Array.from({ length: B.maxStop }, () => "s".repeat(B.maxStopChars)),
      stop_token_ids: Array.from({ length: B.maxStopTokenIds }, (_, i) => i),
      logit_bias: Object.fromEntries(Array.from({ length: B.maxLogitBias }, (_, i) => [String(i), 1])),
      chat_template_kwargs: Object.fromEntries(
        Array.from({ length: B.maxTemplateKwargs }, (_, i) => [`k${i}`, i]),
      ),
    };
    expect(ChatCompletionRequestSchema.safeParse(atBounds).success).toBe(true);
    const prompts = Array.from({ length: B.maxPrompts }, () => [1, 2, 3]);
    expect(CompletionRequestSchema.safeParse({ model: "m", prompt: prompts }).success).toBe(true);
  });

  const over: [string, z.ZodType, unknown, string, string][] = [
    [
      "content characters in all",
      ChatCompletionRequestSchema,
      { model: "m", messages: [user("x".repeat(B.maxPromptChars)), user("y")] },
      "messages",
      `body: messages: must hold at most ${B.maxPromptChars} characters of content in all; got ${B.maxPromptChars + 1}`,
    ],
    [
      "content parts of one message",
      ChatCompletionRequestSchema,
      {
        model: "m",
        messages: [user(Array.from({ length: B.maxContentParts + 1 }, () => ({ type: "text", text: "a" })))],
      },
      "messages[0].content",
      `must be a string or a list of at most ${B.maxContentParts} text parts`,
    ],
    [
      "stop strings",
      ChatCompletionRequestSchema,
      chat({ stop: Array.from({ length: B.maxStop + 1 }, () => "s") }),
      "stop",
      `must be a string or a list of at most ${B.maxStop} strings`,
    ],
    [
      "characters of a stop string",
      ChatCompletionRequestSchema,
      chat({ stop: ["ok", "s".repeat(B.maxStopChars + 1)] }),
      "stop[1]",
      `body: stop[1]: must be at most ${B.maxStopChars} characters; got ${B.maxStopChars + 1}`,
    ],
    [
      "stop_token_ids",
      ChatCompletionRequestSchema,
      chat({ stop_token_ids: Array.from({ length: B.maxStopTokenIds + 1 }, (_, i) => i) }),
      "stop_token_ids",
      `must hold at most ${B.maxStopTokenIds} token ids`,
    ],
    [
      "logit_bias entries",
      ChatCompletionRequestSchema,
      chat({
        logit_bias: Object.fromEntries(Array.from({ length: B.maxLogitBias + 1 }, (_, i) => [String(i), 1])),
      }),
      "logit_bias",
      `body: logit_bias: must hold at most ${B.maxLogitBias} entries; got ${B.maxLogitBias + 1}`,
    ],
    [
      "chat_template_kwargs variables",
      ChatCompletionRequestSchema,
      chat({
        chat_template_kwargs: Object.fromEntries(
          Array.from({ length: B.maxTemplateKwargs + 1 }, (_, i) => [`k${i}`, i]),
        ),
      }),
      "chat_template_kwargs",
      `must hold at most ${B.maxTemplateKwargs} variables; got ${B.maxTemplateKwargs + 1}`,
    ],
    [
      "prompts of a completion",
      CompletionRequestSchema,
      { model: "m", prompt: Array.from({ length: B.maxPrompts + 1 }, () => "hi") },
      "prompt",
      `body: prompt: must hold at most ${B.maxPrompts} prompts; got ${B.maxPrompts + 1}`,
    ],
    [
      "token ids of one prompt",
      CompletionRequestSchema,
      { model: "m", prompt: [[1], new Array(B.maxPromptTokenIds + 1).fill(7)] },
      "prompt[1]",
      `must hold at most ${B.maxPromptTokenIds} token ids; got ${B.maxPromptTokenIds + 1}`,
    ],
    [
      "prompt characters of a completion",
      CompletionRequestSchema,
      { model: "m", prompt: ["x".repeat(B.maxPromptChars), "y"] },
      "prompt",
      `must hold at most ${B.maxPromptChars} characters in all; got ${B.maxPromptChars + 1}`,
    ],
    [
      "messages of /tokenize",
      TokenizeRequestSchema,
      { messages: Array.from({ length: B.maxMessages + 1 }, () => user("hi")) },
      "messages",
      `must hold at most ${B.maxMessages} messages`,
    ],
    [
      "characters of a /tokenize prompt",
      TokenizeRequestSchema,
      { prompt: "x".repeat(B.maxPromptChars + 1) },
      "prompt",
      `must be at most ${B.maxPromptChars} characters`,
    ],
    [
      "token ids of /detokenize",
      DetokenizeRequestSchema,
      { tokens: new Array(B.maxPromptTokenIds + 1).fill(1) },
      "tokens",
      `must hold at most ${B.maxPromptTokenIds} token ids`,
    ],
  ];

  it.each(over)("refuses %s over the bound by name", (_what, schema, body, param, message) => {
    const error = refusal(schema, body);
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
    expect(error.message).toContain(message);
    // the value is described, never echoed whole
    expect(error.message.length).toBeLessThan(300);
  });

  it("caps an error's details at the first problems and one line counting the rest", () => {
    const problems = Array.from({ length: 50_000 }, (_, i) => `messages[${i}].content: must be a string`);
    const error = problemsError("invalid_request", problems, ["messages", 0, "content"]);
    expect(error.message).toBe("messages[0].content: must be a string (and 49999 more)");
    expect(error.details).toHaveLength(MAX_REPORTED_PROBLEMS + 1);
    expect(error.details.slice(0, MAX_REPORTED_PROBLEMS)).toEqual(problems.slice(0, MAX_REPORTED_PROBLEMS));
    expect(error.details.at(-1)).toBe(`... and ${50_000 - MAX_REPORTED_PROBLEMS} more problems not listed`);
  });

  it("keeps every detail when there are few problems", () => {
    const problems = ["a: must be x", "b: must be y"];
    expect(problemsError("invalid_request", problems).details).toEqual(problems);
  });
});
