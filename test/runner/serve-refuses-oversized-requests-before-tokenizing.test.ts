// The runner refuses a request over the shared bounds (src/contracts/request-bounds.ts) with 400 before it
// tokenizes anything: 100,000 messages, more prompts than the bound or than this runner could ever hold
// (a 400, not a 429 that no retry gets past), a body over the runner's limit (413); and an error body lists
// at most MAX_REPORTED_PROBLEMS problems however many the request has.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_REPORTED_PROBLEMS, REQUEST_BOUNDS } from "../../src/contracts/request-bounds.ts";
import { RUNNER_JSON_BODY_BYTES } from "../../gpu-runner/serving/http/app.ts";
import { errorOf, makeDemoDirs, startTestRunner, type DemoDirs, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;
beforeAll(async () => {
  dirs = await makeDemoDirs();
  // batch 2 + queue 3: this runner holds at most 5 sequences at once
  t = await startTestRunner(dirs.model, { maxBatch: 2, maxQueue: 3 });
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

const chat = (messages: unknown[]) =>
  t.post("/v1/chat/completions", { model: "demo-llama", messages, max_tokens: 1 });

describe("bounds before tokenizing", () => {
  it("answers 100,000 messages with 400 naming the bound", async () => {
    const res = await chat(Array.from({ length: 100_000 }, () => ({ role: "user", content: "hi" })));
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.param).toBe("messages");
    expect(error.message).toBe(
      `body.messages: must hold at most ${REQUEST_BOUNDS.maxMessages} messages; got a list of 100000 items`,
    );
  });

  it("lists at most the first problems of a request with thousands, and counts the rest", async () => {
    const res = await chat(Array.from({ length: 4_000 }, () => ({ role: "robot", content: "hi" })));
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text.length).toBeLessThan(10_000);
    const error = JSON.parse(text).error as { message: string; details: string[] };
    expect(error.message).toMatch(/^body\.messages\[0\]\.role: .* \(and 3999 more\)$/);
    expect(error.details).toHaveLength(MAX_REPORTED_PROBLEMS + 1);
    expect(error.details.at(-1)).toBe(`... and ${4_000 - MAX_REPORTED_PROBLEMS} more problems not listed`);
  });

  it("answers more than 256 prompts with 400, not 429", async () => {
    const prompt = Array.from({ length: REQUEST_BOUNDS.maxPrompts + 1 }, () => [1, 2, 3]);
    const res = await t.post("/v1/completions", { model: "demo-llama", prompt, max_tokens: 1 });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toBe(
      `body.prompt: must hold at most ${REQUEST_BOUNDS.maxPrompts} prompts; got ${REQUEST_BOUNDS.maxPrompts + 1}`,
    );
  });

  it("answers more prompts than this runner's batch and queue hold with 400 naming its flags", async () => {
    const prompt = Array.from({ length: 6 }, () => "hello");
    const res = await t.post("/v1/completions", { model: "demo-llama", prompt, max_tokens: 1 });
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.param).toBe("prompt");
    expect(error.message).toBe(
      "prompt: must hold at most 5 prompts on this runner (its --max-batch and --max-queue together); got 6",
    );
    const fits = await t.post("/v1/completions", {
      model: "demo-llama",
      prompt: prompt.slice(0, 5),
      max_tokens: 1,
    });
    expect(fits.status).toBe(200);
  });

  it("answers a body over the runner's limit with 413 before parsing it", async () => {
    const body = JSON.stringify({ model: "demo-llama", prompt: "x".repeat(RUNNER_JSON_BODY_BYTES) });
    const res = await t.app.request("/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(res.status).toBe(413);
    expect((await errorOf(res)).message).toBe(
      `request body: must be <= ${RUNNER_JSON_BODY_BYTES} bytes (32 MiB) on this runner`,
    );
  });
});
