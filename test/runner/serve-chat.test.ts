import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionChunkSchema, ChatCompletionSchema } from "../../src/contracts/openai.ts";
import {
  type DemoDirs,
  errorOf,
  makeDemoDirs,
  sseData,
  startTestRunner,
  type TestRunner,
} from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  t = await startTestRunner(dirs.model);
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

const messages = [
  { role: "system", content: "You are a helpful assistant." },
  {
    role: "user",
    content: [
      { type: "text", text: "Tell me about the " },
      { type: "text", text: "river." },
    ],
  },
];

describe("POST /v1/chat/completions", () => {
  it("answers through the chat template, counting the templated prompt", async () => {
    const res = await t.post("/v1/chat/completions", {
      model: "demo-llama",
      messages,
      max_tokens: 10,
      temperature: 0,
    });
    const out = ChatCompletionSchema.parse(await res.json());
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const expectedPrompt = t.runner.deps.tokenizer.encodeChat(
      [
        { role: "system", content: "You are a helpful assistant." },
        { role: "user", content: "Tell me about the river." },
      ],
      { addGenerationPrompt: true },
    );
    expect(out.usage.prompt_tokens).toBe(expectedPrompt.length);
    expect(out.choices[0]?.message.role).toBe("assistant");
    expect(out.usage.completion_tokens).toBeLessThanOrEqual(10);
    expect(out.choices[0]?.logprobs).toBeNull();
  });

  it("streams role, content deltas, finish, usage and [DONE] as valid chunks", async () => {
    const body = {
      model: "demo-llama",
      messages,
      max_tokens: 16,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    };
    const whole = ChatCompletionSchema.parse(await (await t.post("/v1/chat/completions", body)).json());
    const res = await t.post("/v1/chat/completions", {
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    const data = sseData(await res.text());
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => ChatCompletionChunkSchema.parse(JSON.parse(d)));
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    const content = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? "")).join("");
    expect(content).toBe(whole.choices[0]?.message.content);
    const streamedLogprobs = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.logprobs?.content ?? []));
    expect(streamedLogprobs).toEqual(whole.choices[0]?.logprobs?.content);
    expect(streamedLogprobs).toHaveLength(
      whole.usage.completion_tokens - (whole.choices[0]?.finish_reason === "stop" ? 1 : 0),
    );
    for (const entry of streamedLogprobs) {
      expect(entry.top_logprobs).toHaveLength(2);
      expect(entry.logprob).toBeCloseTo(entry.top_logprobs[0]?.logprob ?? Number.NaN, 6);
      expect(entry.bytes?.length).toBeGreaterThan(0);
    }
    expect(chunks.at(-1)?.usage).toEqual(whole.usage);
    expect(chunks.at(-1)?.choices).toEqual([]);
  });

  it("refuses a request whose messages break the schema, naming the field", async () => {
    const res = await t.post("/v1/chat/completions", {
      model: "demo-llama",
      messages: [{ role: "robot", content: "hi" }],
    });
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.param).toBe("messages[0].role");
    expect(error.message).toContain("robot");
  });

  it("answers malformed JSON with our envelope and the request id", async () => {
    const res = await t.app.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect((await errorOf(res)).code).toBe("invalid_request");
  });
});
