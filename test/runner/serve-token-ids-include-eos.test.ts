// vLLM's `token_ids` include the eos that ended a generation (its detokenizer skips the stop token's text
// but still appends its id), so `token_ids` always has `completion_tokens` entries; `text` never shows it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ChatCompletionChunkSchema,
  ChatCompletionSchema,
  CompletionChunkSchema,
  CompletionSchema,
} from "../../src/contracts/openai.ts";
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

// Random demo weights put eos at roughly 2 in 520 per sampled token: a warm temperature over 24 tokens
// ends on eos for about one seed in four, so searching a few dozen seeds always finds one.
const sampled = { model: "demo-llama", max_tokens: 24, temperature: 1.5, return_token_ids: true };
const SEEDS = 60;

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

/** The first seed whose answer ends on a stop token (finish_reason "stop" with no stop strings). */
async function seedEndingOnEos<T>(ask: (seed: number) => Promise<T>, stopped: (out: T) => boolean) {
  for (let seed = 0; seed < SEEDS; seed++) {
    const out = await ask(seed);
    if (stopped(out)) return { seed, out };
  }
  throw new Error(`no seed below ${SEEDS} ended on eos; the demo model or sampler changed`);
}

function expectEndsOnEos(ids: number[] | undefined, completionTokens: number, text: string): void {
  const tok = t.runner.deps.tokenizer;
  const eos = ids?.at(-1) ?? -1;
  expect(t.runner.deps.stopTokenIds).toContain(eos);
  expect(ids).toHaveLength(completionTokens);
  expect(tok.decode(ids?.slice(0, -1) ?? [], { skipSpecialTokens: false })).toBe(text);
  expect(text).not.toContain(tok.tokenText(eos));
}

describe("token_ids include the eos that ended generation", () => {
  it("completions: the eos id closes token_ids and counts in completion_tokens, not in text", async () => {
    const { seed, out } = await seedEndingOnEos(
      async (s) =>
        CompletionSchema.parse(await post("/v1/completions", { ...sampled, prompt: "The fox", seed: s })),
      (o) => o.choices[0]?.finish_reason === "stop",
    );
    const choice = out.choices[0];
    expectEndsOnEos(choice?.token_ids, out.usage.completion_tokens, choice?.text ?? "");

    const chunks = (await chunksOf("/v1/completions", { ...sampled, prompt: "The fox", seed })).map((c) =>
      CompletionChunkSchema.parse(c),
    );
    const choices = chunks.flatMap((c) => c.choices);
    expect(choices.flatMap((c) => c.token_ids ?? [])).toEqual(choice?.token_ids);
    expect(choices.map((c) => c.text).join("")).toBe(choice?.text);
    // vLLM sends the eos id with the finish reason, as that step's output.
    expect(choices.at(-1)?.finish_reason).toBe("stop");
    expect(choices.at(-1)?.token_ids).toEqual([choice?.token_ids?.at(-1)]);
  });

  it("chat: the same on the choice and across the stream's chunks", async () => {
    const messages = [{ role: "user", content: "Say something." }];
    const { seed, out } = await seedEndingOnEos(
      async (s) =>
        ChatCompletionSchema.parse(await post("/v1/chat/completions", { ...sampled, messages, seed: s })),
      (o) => o.choices[0]?.finish_reason === "stop",
    );
    const choice = out.choices[0];
    expectEndsOnEos(choice?.token_ids, out.usage.completion_tokens, choice?.message.content ?? "");

    const chunks = (await chunksOf("/v1/chat/completions", { ...sampled, messages, seed })).map((c) =>
      ChatCompletionChunkSchema.parse(c),
    );
    const choices = chunks.flatMap((c) => c.choices);
    expect(choices.flatMap((c) => c.token_ids ?? [])).toEqual(choice?.token_ids);
    expect(choices.map((c) => c.delta.content ?? "").join("")).toBe(choice?.message.content);
    expect(choices.at(-1)?.finish_reason).toBe("stop");
    expect(choices.at(-1)?.token_ids).toEqual([choice?.token_ids?.at(-1)]);
  });

  it("a generation cut by max_tokens has no eos to add: token_ids match completion_tokens", async () => {
    const out = CompletionSchema.parse(
      await post("/v1/completions", { ...sampled, temperature: 0, max_tokens: 5, prompt: "The fox" }),
    );
    expect(out.choices[0]?.finish_reason).toBe("length");
    expect(out.choices[0]?.token_ids).toHaveLength(5);
    expect(t.runner.deps.stopTokenIds).not.toContain(out.choices[0]?.token_ids?.at(-1));
  });
});
