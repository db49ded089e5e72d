import { describe, expect, it } from "vitest";
import { formatIssues } from "../../src/contracts/issues.ts";
import {
  ChatCompletionChunkSchema,
  ChatCompletionRequestSchema,
  ChatCompletionSchema,
  CompletionRequestSchema,
  CompletionSchema,
  ErrorEnvelopeSchema,
  ModelListSchema,
  messageText,
  samplingParams,
} from "../../src/contracts/openai.ts";
import { AppError, errorEnvelope } from "../../src/errors.ts";

const chat = (extra: Record<string, unknown> = {}) => ({
  model: "support@prod",
  messages: [{ role: "user", content: "hi" }],
  ...extra,
});

function chatProblems(body: unknown): string[] {
  const result = ChatCompletionRequestSchema.safeParse(body, { reportInput: true });
  return result.success ? [] : formatIssues(result.error);
}

describe("ChatCompletionRequestSchema", () => {
  it("accepts what the OpenAI SDK sends, unknown fields passing through", () => {
    const body = chat({
      messages: [
        { role: "developer", content: "be brief" },
        {
          role: "system",
          content: [
            { type: "text", text: "a" },
            { type: "text", text: "b" },
          ],
        },
        { role: "assistant", content: null, refusal: null },
        { role: "tool", content: "42", tool_call_id: "call_1" },
        { role: "user", content: "hi", name: "ann" },
      ],
      max_completion_tokens: 16,
      temperature: 0,
      top_p: 1,
      top_k: 40,
      seed: 7,
      stop: ["\n", "END"],
      n: 1,
      stream: true,
      stream_options: { include_usage: true },
      logprobs: true,
      top_logprobs: 20,
      user: "subject-1",
      presence_penalty: -2,
      frequency_penalty: 2,
      metadata: { team: "a" },
      parallel_tool_calls: null,
    });
    const parsed = ChatCompletionRequestSchema.parse(body);
    expect(parsed.metadata).toEqual({ team: "a" });
    expect(messageText(parsed.messages[1] as (typeof parsed.messages)[number])).toBe("ab");
    expect(samplingParams(parsed)).toEqual({
      maxTokens: 16,
      temperature: 0,
      topP: 1,
      topK: 40,
      seed: 7,
      stop: ["\n", "END"],
      presencePenalty: -2,
      frequencyPenalty: 2,
    });
  });

  it("fills OpenAI's defaults when sampling fields are absent or null", () => {
    const parsed = ChatCompletionRequestSchema.parse(chat({ temperature: null, stop: "x", max_tokens: 5 }));
    expect(samplingParams(parsed)).toMatchObject({
      maxTokens: 5,
      temperature: 1,
      topP: 1,
      topK: 0,
      stop: ["x"],
    });
  });

  it("refuses out-of-range sampling fields, naming field, rule and value", () => {
    expect(
      chatProblems(chat({ temperature: 2.5, top_p: 0, top_k: -1, top_logprobs: 21, logprobs: true })),
    ).toEqual([
      "temperature: Too big: expected number to be <=2; got 2.5",
      "top_p: Too small: expected number to be >0; got 0",
      "top_k: Too small: expected number to be >=0; got -1",
      "top_logprobs: Too big: expected number to be <=20; got 21",
    ]);
    expect(chatProblems(chat({ presence_penalty: 3, stop: ["a", "b", "c", "d", "e"] }))).toEqual([
      'stop: must be a string or a list of at most 4 strings; got ["a","b","c","d","e"]',
      "presence_penalty: Too big: expected number to be <=2; got 3",
    ]);
  });

  it("refuses n other than 1 and non-text content clearly", () => {
    expect(chatProblems(chat({ n: 2 }))).toEqual(["n: only n = 1 is supported; got 2"]);
    const image = { role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] };
    expect(chatProblems(chat({ messages: [image] }))).toEqual([
      'messages[0].content[0].type: only "text" content parts are supported (image, audio and file parts are not); got "image_url"',
    ]);
  });

  it("refuses a missing model, empty messages, bad roles and top_logprobs without logprobs", () => {
    expect(chatProblems({ messages: [] })).toEqual([
      "model: is required (string)",
      "messages: must hold at least one message; got []",
    ]);
    expect(chatProblems(chat({ messages: [{ role: "bot", content: "x" }] }))).toEqual([
      'messages[0].role: Invalid option: expected one of "system"|"user"|"assistant"|"tool"|"developer"; got "bot"',
    ]);
    expect(chatProblems(chat({ top_logprobs: 2 }))).toEqual(["top_logprobs: requires logprobs: true; got 2"]);
  });
});

describe("CompletionRequestSchema", () => {
  it("accepts the four prompt forms and legacy logprobs 0..5", () => {
    for (const prompt of ["hi", ["a", "b"], [1, 2, 3], [[1], [2, 3]]]) {
      expect(CompletionRequestSchema.safeParse({ model: "m", prompt, logprobs: 5 }).success).toBe(true);
    }
    expect(CompletionRequestSchema.safeParse({ model: "m", prompt: "x", logprobs: 6 }).success).toBe(false);
    expect(CompletionRequestSchema.safeParse({ model: "m", prompt: [1.5] }).success).toBe(false);
    expect(CompletionRequestSchema.safeParse({ model: "m", prompt: ["a", 1] }).success).toBe(false);
  });

  it("refuses echo and best_of > 1 by name", () => {
    const result = CompletionRequestSchema.safeParse(
      { model: "m", prompt: "x", echo: true, best_of: 3 },
      { reportInput: true },
    );
    expect(result.success ? [] : formatIssues(result.error)).toEqual([
      "echo: echo is not supported; got true",
      "best_of: only best_of = 1 is supported; got 3",
    ]);
    expect(CompletionRequestSchema.safeParse({ model: "m", prompt: "x", echo: false }).success).toBe(true);
  });
});

describe("response schemas are strict", () => {
  const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };

  it("accept what we produce", () => {
    const completion = {
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 1,
      model: "support@3",
      choices: [
        { index: 0, message: { role: "assistant", content: "hey" }, logprobs: null, finish_reason: "stop" },
      ],
      usage,
    };
    expect(ChatCompletionSchema.parse(completion)).toEqual(completion);
    const chunk = {
      id: "chatcmpl-1",
      object: "chat.completion.chunk",
      created: 1,
      model: "support@3",
      choices: [
        { index: 0, delta: { role: "assistant", content: "he" }, logprobs: null, finish_reason: null },
      ],
    };
    expect(ChatCompletionChunkSchema.parse(chunk)).toEqual(chunk);
    const usageChunk = { ...chunk, choices: [], usage };
    expect(ChatCompletionChunkSchema.parse(usageChunk)).toEqual(usageChunk);
    const text = {
      id: "cmpl-1",
      object: "text_completion",
      created: 1,
      model: "m",
      choices: [
        {
          index: 0,
          text: "x",
          logprobs: { tokens: ["x"], token_logprobs: [-0.1], top_logprobs: [{ x: -0.1 }], text_offset: [0] },
          finish_reason: "length",
        },
      ],
      usage,
    };
    expect(CompletionSchema.parse(text)).toEqual(text);
    const models = {
      object: "list",
      data: [{ id: "support", object: "model", created: 1, owned_by: "acme" }],
    };
    expect(ModelListSchema.parse(models)).toEqual(models);
  });

  it("refuse extra fields", () => {
    const models = {
      object: "list",
      data: [{ id: "a", object: "model", created: 1, owned_by: "x", extra: 1 }],
    };
    expect(ModelListSchema.safeParse(models).success).toBe(false);
  });

  it("ErrorEnvelopeSchema accepts what errorEnvelope renders", () => {
    const envelope = errorEnvelope(
      new AppError("invalid_adapter", "bad", { param: "file", details: ["bad", "worse"] }),
    );
    expect(ErrorEnvelopeSchema.parse(envelope)).toEqual({
      error: {
        message: "bad",
        type: "invalid_request_error",
        param: "file",
        code: "invalid_adapter",
        details: ["bad", "worse"],
      },
    });
  });
});
