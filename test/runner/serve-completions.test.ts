import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompletionChunkSchema, CompletionSchema } from "../../src/contracts/openai.ts";
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

async function complete(body: Record<string, unknown>) {
  const res = await t.post("/v1/completions", { model: "demo-llama", ...body });
  const json = await res.json();
  expect(res.status, JSON.stringify(json)).toBe(200);
  return CompletionSchema.parse(json);
}

describe("POST /v1/completions", () => {
  it("completes a text prompt greedily, max_tokens long, with usage", async () => {
    const out = await complete({ prompt: "The quick brown fox", max_tokens: 12, temperature: 0 });
    const choice = out.choices[0];
    expect(choice?.finish_reason).toBe("length");
    expect(out.usage.completion_tokens).toBe(12);
    expect(out.usage.prompt_tokens).toBe(t.runner.deps.tokenizer.encode("The quick brown fox").length);
    expect(choice?.text.length).toBeGreaterThan(0);
    const again = await complete({ prompt: "The quick brown fox", max_tokens: 12, temperature: 0 });
    expect(again.choices[0]?.text).toBe(choice?.text);
  });

  it("takes token ids and lists of prompts, one choice each", async () => {
    const ids = t.runner.deps.tokenizer.encode("Hello there");
    const byText = await complete({ prompt: "Hello there", max_tokens: 6, temperature: 0 });
    const byIds = await complete({ prompt: ids, max_tokens: 6, temperature: 0 });
    expect(byIds.choices[0]?.text).toBe(byText.choices[0]?.text);
    const many = await complete({ prompt: [ids, ids.slice(0, 2)], max_tokens: 5, temperature: 0 });
    expect(many.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(many.choices[0]?.text).toBe(byText.choices[0]?.text.slice(0, many.choices[0]?.text.length));
    expect(many.usage.prompt_tokens).toBe(ids.length + 2);
  });

  it("streams SSE chunks that add up to the non-streamed text, then usage and [DONE]", async () => {
    const body = { model: "demo-llama", prompt: "The sea was", max_tokens: 20, temperature: 0 };
    const whole = await complete(body);
    const res = await t.post("/v1/completions", {
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const data = sseData(await res.text());
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => CompletionChunkSchema.parse(JSON.parse(d)));
    const usage = chunks.at(-1);
    expect(usage?.choices).toEqual([]);
    expect(usage?.usage).toEqual(whole.usage);
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.text)).join("");
    expect(text).toBe(whole.choices[0]?.text);
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe("length");
  });

  it("samples reproducibly with a seed and differently without temperature 0", async () => {
    const body = { prompt: "Once", max_tokens: 16, temperature: 1.5, top_p: 0.95, top_k: 50 };
    const a = await complete({ ...body, seed: 11 });
    const b = await complete({ ...body, seed: 11 });
    const c = await complete({ ...body, seed: 12 });
    expect(b.choices[0]?.text).toBe(a.choices[0]?.text);
    expect(c.choices[0]?.text).not.toBe(a.choices[0]?.text);
  });

  it("cuts at a stop string, which is not returned", async () => {
    const free = await complete({ prompt: "The", max_tokens: 24, temperature: 0 });
    const text = free.choices[0]?.text ?? "";
    const stop = text.slice(6, 8);
    expect(stop.length).toBe(2);
    const cut = await complete({ prompt: "The", max_tokens: 24, temperature: 0, stop: [stop] });
    expect(cut.choices[0]?.finish_reason).toBe("stop");
    expect(cut.choices[0]?.text).toBe(text.slice(0, text.indexOf(stop)));
  });

  it("returns logprobs: the chosen token's and the top alternatives, best first", async () => {
    const out = await complete({ prompt: "Good", max_tokens: 4, temperature: 0, logprobs: 3 });
    const lp = out.choices[0]?.logprobs;
    expect(lp?.tokens).toHaveLength(4);
    for (const [i, top] of (lp?.top_logprobs ?? []).entries()) {
      const values = Object.values(top ?? {});
      expect(values.length).toBeGreaterThan(0);
      // greedy: the chosen token is the most likely one (top_logprobs keys are texts, which may collide,
      // so the chosen value may be missing from the record but never below its best entry)
      expect(lp?.token_logprobs[i]).toBeGreaterThanOrEqual(Math.max(...values) - 1e-6);
      expect(Math.max(...values)).toBeLessThan(0);
    }
    expect(lp?.tokens.join("")).toBe(out.choices[0]?.text);
  });

  it("refuses bad requests with the field, the rule and the value", async () => {
    const res = await t.post("/v1/completions", { model: "demo-llama", prompt: "x", temperature: 3 });
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.code).toBe("invalid_request");
    expect(error.param).toBe("temperature");
    expect(error.message).toMatch(/temperature.*2.*3/);
    const big = await t.post("/v1/completions", { model: "demo-llama", prompt: [9999] });
    expect((await errorOf(big)).message).toMatch(/vocab size 520; got 9999/);
    const unknown = await t.post("/v1/completions", { model: "nope", prompt: "x" });
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toMatchObject({ code: "model_not_found", param: "model" });
  });
});
