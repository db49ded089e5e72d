// Prompts are tokenized in worker threads (gpu-runner/engine/tokenizer/tokenizer-pool.ts): /health answers
// while a huge prompt is being tokenized, the ids from a worker equal the tokenizer's in place, and a prompt
// that takes longer than --tokenize-deadline-ms is refused with 413 naming the limit while the pool goes on
// serving. Order of answers, not time, is what these tests check (docs/conventions.md#tests).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenizeResponseSchema } from "../../src/contracts/runner-vllm.ts";
import { errorOf, makeDemoDirs, startTestRunner, type DemoDirs, type TestRunner } from "./serve-helpers.ts";

const WORDS = "the quick brown fox jumps over the lazy dog and ";
const text = (chars: number) => WORDS.repeat(Math.ceil(chars / WORDS.length)).slice(0, chars);

let dirs: DemoDirs;
beforeAll(async () => {
  dirs = await makeDemoDirs();
});
afterAll(async () => {
  await dirs?.cleanup();
});

describe("tokenization in worker threads", () => {
  let t: TestRunner;
  beforeAll(async () => {
    t = await startTestRunner(dirs.model, { bounds: { tokenizerPoolSize: 1, tokenizeDeadlineMs: 120_000 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("answers /health while a two-million-character prompt is being tokenized", async () => {
    const order: string[] = [];
    const huge = t
      .post("/v1/chat/completions", {
        model: "demo-llama",
        messages: [{ role: "user", content: text(2_000_000) }],
        max_tokens: 1,
      })
      .then(async (res) => {
        order.push("huge");
        return res;
      });
    // let the huge request reach its worker before /health is asked
    await new Promise((resolve) => setTimeout(resolve, 50));
    const health = await t.app.request("/health");
    order.push("health");
    expect(health.status).toBe(200);
    const res = await huge;
    // the prompt was tokenized in full (then refused for the model's 2048-token context)
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toMatch(
      /maximum context length is 2048 tokens\. However, your request has \d{6,} input tokens/,
    );
    expect(order).toEqual(["health", "huge"]);
  });

  it("gives the same ids from a worker as the tokenizer in place, for a chat and for a prompt", async () => {
    const { tokenizer } = t.runner.deps;
    const long = text(20_000);
    const messages = [
      { role: "system", content: "be brief" },
      { role: "user", content: long },
    ];
    const chat = await t.post("/tokenize", { messages });
    expect(chat.status).toBe(200);
    expect(TokenizeResponseSchema.parse(await chat.json()).tokens).toEqual(
      tokenizer.encodeChat(messages, { addGenerationPrompt: true }),
    );
    const prompt = await t.post("/tokenize", { prompt: long });
    expect(TokenizeResponseSchema.parse(await prompt.json()).tokens).toEqual(tokenizer.encode(long));
  });
});

describe("the tokenize deadline", () => {
  let t: TestRunner;
  beforeAll(async () => {
    t = await startTestRunner(dirs.model, { bounds: { tokenizerPoolSize: 1, tokenizeDeadlineMs: 200 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("refuses with 413 naming the limit a prompt that takes longer, and the pool serves the next one", async () => {
    const res = await t.post("/v1/completions", {
      model: "demo-llama",
      prompt: text(3_000_000),
      max_tokens: 1,
    });
    expect(res.status).toBe(413);
    const error = await errorOf(res);
    expect(error.code).toBe("payload_too_large");
    expect(error.param).toBe("prompt");
    expect(error.message).toBe(
      "prompt: tokenizing took longer than 200 ms (the runner's --tokenize-deadline-ms); send a shorter prompt",
    );
    const chat = await t.post("/v1/chat/completions", {
      model: "demo-llama",
      messages: Array.from({ length: 3_000 }, () => ({ role: "user", content: text(1_000) })),
      max_tokens: 1,
    });
    expect(chat.status).toBe(413);
    expect((await errorOf(chat)).param).toBe("messages");
    // small prompts are tokenized in place and still served
    const small = await t.post("/v1/completions", { model: "demo-llama", prompt: "hello", max_tokens: 2 });
    expect(small.status).toBe(200);
  });

  it("replaces a worker killed at the deadline: a prompt that fits in it is tokenized by the new one", async () => {
    await t.post("/v1/completions", { model: "demo-llama", prompt: text(3_000_000), max_tokens: 1 });
    // 5,000 characters go to a worker (above the in-place bound) and take a few milliseconds there
    const long = text(5_000);
    const res = await t.post("/tokenize", { prompt: long });
    expect(res.status).toBe(200);
    expect(TokenizeResponseSchema.parse(await res.json()).tokens).toEqual(
      t.runner.deps.tokenizer.encode(long),
    );
  });
});
