// vLLM's `return_token_ids` on a model with a tokenizer: completions carry `prompt_token_ids` and `token_ids`
// on each choice, chat carries `prompt_token_ids` on the response and `token_ids` on the choice; streams
// send the prompt's ids in the first chunk and each chunk's new ids. Without the option neither appears.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ChatCompletionChunkSchema,
  ChatCompletionSchema,
  CompletionChunkSchema,
  CompletionSchema,
} from "../../src/contracts/openai.ts";
import { RunnerHealthSchema } from "../../src/contracts/runner.ts";
import { type DemoDirs, makeDemoDirs, sseData, startTestRunner, type TestRunner } from "./serve-helpers.ts";

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

const prompt = "The quick brown fox";
const messages = [{ role: "user", content: "Tell me about the river." }];
const greedy = { model: "demo-llama", max_tokens: 12, temperature: 0 };

async function post(path: string, body: Record<string, unknown>): Promise<unknown> {
  const res = await t.post(path, body);
  const json = await res.json();
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json;
}

async function chunksOf(path: string, body: Record<string, unknown>): Promise<unknown[]> {
  const res = await t.post(path, { ...body, stream: true });
  expect(res.status).toBe(200);
  const data = sseData(await res.text());
  expect(data.at(-1)).toBe("[DONE]");
  return data.slice(0, -1).map((d) => JSON.parse(d));
}

describe("return_token_ids on a model with a tokenizer", () => {
  it("reports text mode in /health", async () => {
    const health = RunnerHealthSchema.parse(await (await t.app.request("/health")).json());
    expect(health.mode).toBe("text");
  });

  it("completions: each choice carries its prompt's ids and the ids that decode to its text", async () => {
    const tok = t.runner.deps.tokenizer;
    const out = CompletionSchema.parse(
      await post("/v1/completions", { ...greedy, prompt, return_token_ids: true }),
    );
    const choice = out.choices[0];
    expect(choice?.finish_reason).toBe("length");
    expect(choice?.prompt_token_ids).toEqual(tok.encode(prompt));
    expect(choice?.token_ids).toHaveLength(12);
    expect(tok.decode(choice?.token_ids ?? [], { skipSpecialTokens: true })).toBe(choice?.text);
    expect(choice?.text.length).toBeGreaterThan(0);
    const plain = await post("/v1/completions", { ...greedy, prompt });
    const plainChoice = (plain as { choices: Record<string, unknown>[] }).choices[0];
    expect(plainChoice).not.toHaveProperty("token_ids");
    expect(plainChoice).not.toHaveProperty("prompt_token_ids");
    expect(plainChoice?.text).toBe(choice?.text);
  });

  it("completions stream: the prompt's ids in the first chunk only, the ids add up to the whole", async () => {
    const body = { ...greedy, prompt, return_token_ids: true };
    const whole = CompletionSchema.parse(await post("/v1/completions", body));
    const chunks = (await chunksOf("/v1/completions", body)).map((c) => CompletionChunkSchema.parse(c));
    const choices = chunks.flatMap((c) => c.choices);
    expect(choices[0]?.prompt_token_ids).toEqual(whole.choices[0]?.prompt_token_ids);
    expect(choices.slice(1).every((c) => c.prompt_token_ids === undefined)).toBe(true);
    expect(choices.flatMap((c) => c.token_ids ?? [])).toEqual(whole.choices[0]?.token_ids);
    expect(choices.map((c) => c.text).join("")).toBe(whole.choices[0]?.text);
  });

  it("chat: the templated prompt's ids on the response, the answer's ids on the choice", async () => {
    const tok = t.runner.deps.tokenizer;
    const out = ChatCompletionSchema.parse(
      await post("/v1/chat/completions", { ...greedy, messages, return_token_ids: true }),
    );
    expect(out.prompt_token_ids).toEqual(tok.encodeChat(messages, { addGenerationPrompt: true }));
    expect(out.usage.prompt_tokens).toBe(out.prompt_token_ids?.length);
    const choice = out.choices[0];
    expect(choice?.token_ids).toHaveLength(out.usage.completion_tokens);
    expect(tok.decode(choice?.token_ids ?? [], { skipSpecialTokens: true })).toBe(choice?.message.content);
    const plain = (await post("/v1/chat/completions", { ...greedy, messages })) as Record<string, unknown>;
    expect(plain).not.toHaveProperty("prompt_token_ids");
    expect((plain.choices as unknown[])[0]).not.toHaveProperty("token_ids");
  });

  it("chat stream: the prompt's ids in the first chunk only, the ids add up to the whole", async () => {
    const body = { ...greedy, messages, return_token_ids: true };
    const whole = ChatCompletionSchema.parse(await post("/v1/chat/completions", body));
    const chunks = (await chunksOf("/v1/chat/completions", body)).map((c) =>
      ChatCompletionChunkSchema.parse(c),
    );
    expect(chunks[0]?.prompt_token_ids).toEqual(whole.prompt_token_ids);
    expect(chunks.slice(1).every((c) => c.prompt_token_ids === undefined)).toBe(true);
    const choices = chunks.flatMap((c) => c.choices);
    expect(choices.flatMap((c) => c.token_ids ?? [])).toEqual(whole.choices[0]?.token_ids);
    expect(choices.map((c) => c.delta.content ?? "").join("")).toBe(whole.choices[0]?.message.content);
  });
});
