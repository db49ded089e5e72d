// A prompt and max_tokens that do not fit the model's context are refused (400) as OpenAI and vLLM refuse
// them, in vLLM's words, with `param` the field that asked for too much; a prompt alone that fills the
// context names the prompt. An unasked default is still shortened to fit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

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

const context = () => t.runner.deps.engine.info.maxPositions;
const ids = (n: number) => Array.from({ length: n }, (_, i) => 1 + (i % 400));

describe("context overflow", () => {
  it("completions: prompt + max_tokens beyond the context is 400 on max_tokens; just fitting is served", async () => {
    const n = context();
    const res = await t.post("/v1/completions", { model: "demo-llama", prompt: ids(10), max_tokens: n - 9 });
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error).toMatchObject({
      code: "invalid_request",
      type: "invalid_request_error",
      param: "max_tokens",
    });
    expect(error.message).toBe(
      `max_tokens: This model's maximum context length is ${n} tokens. However, you requested ${n + 1} tokens (10 in the prompt, ${n - 9} in the completion). Please reduce the length of the prompt or completion.`,
    );
    const fits = await t.post("/v1/completions", {
      model: "demo-llama",
      prompt: ids(n - 2),
      max_tokens: 2,
      temperature: 0,
      ignore_eos: true,
    });
    expect(fits.status).toBe(200);
    expect(CompletionSchema.parse(await fits.json()).usage.completion_tokens).toBe(2);
  });

  it("chat: names max_completion_tokens when that asked, and the messages", async () => {
    const n = context();
    const res = await t.post("/v1/chat/completions", {
      model: "demo-llama",
      messages: [{ role: "user", content: "hi" }],
      max_completion_tokens: n,
    });
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.param).toBe("max_completion_tokens");
    expect(error.message).toMatch(
      new RegExp(
        `^max_completion_tokens: This model's maximum context length is ${n} tokens\\. However, you requested \\d+ tokens \\(\\d+ in the messages, ${n} in the completion\\)`,
      ),
    );
    const viaMaxTokens = await t.post("/v1/chat/completions", {
      model: "demo-llama",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: n,
    });
    expect((await errorOf(viaMaxTokens)).param).toBe("max_tokens");
  });

  it("a prompt that fills the context is refused on prompt, whatever max_tokens says", async () => {
    const res = await t.post("/v1/completions", { model: "demo-llama", prompt: ids(context()) });
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.param).toBe("prompt");
    expect(error.message).toContain(`However, your request has ${context()} input tokens`);
  });

  it("the legacy endpoint's unasked default of 16 shrinks to fit instead", async () => {
    const res = await t.post("/v1/completions", {
      model: "demo-llama",
      prompt: ids(context() - 3),
      temperature: 0,
      ignore_eos: true,
    });
    expect(res.status).toBe(200);
    const out = CompletionSchema.parse(await res.json());
    expect(out.usage.completion_tokens).toBe(3);
    expect(out.choices[0]?.finish_reason).toBe("length");
  });

  it("refuses before anything starts", async () => {
    const before = t.runner.deps.metrics.requests.get({ adapter_id: "base" });
    await t.post("/v1/completions", { model: "demo-llama", prompt: ids(10), max_tokens: context() });
    expect(t.runner.deps.metrics.requests.get({ adapter_id: "base" })).toBe(before);
  });
});
