// A model directory without tokenizer.json (the HF fixtures: save_pretrained with no tokenizer) is served in
// token-ids mode, as vLLM's --skip-tokenizer-init: token-id prompts in, `token_ids` out, `text` always "",
// and every request that needs text refused with the missing file and the remedy.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CompletionChunkSchema, CompletionSchema } from "../../src/contracts/openai.ts";
import { RunnerHealthSchema } from "../../src/contracts/runner.ts";
import { errorOf, sseData, startTestRunner, type TestRunner } from "./serve-helpers.ts";

const MODEL = join(import.meta.dirname, "..", "fixtures", "hf", "tiny-llama");
const ADAPTERS = ["qv", "all7", "patterns"];

const CaseSchema = z.looseObject({
  adapter: z.string().nullable(),
  input_ids: z.array(z.number().int()).min(1),
  greedy: z.array(z.number().int()).length(8),
});
const expected = z
  .looseObject({ cases: z.array(CaseSchema).min(8) })
  .parse(JSON.parse(readFileSync(join(MODEL, "expected.json"), "utf8")));
type Case = z.infer<typeof CaseSchema>;

let t: TestRunner;

beforeAll(async () => {
  t = await startTestRunner(MODEL, {
    loras: ADAPTERS.map((name) => ({ name, path: join(MODEL, "adapters", name) })),
    maxLoraRank: 8,
  });
});
afterAll(async () => {
  await t?.close();
});

const modelOf = (c: Case) => c.adapter ?? "tiny-llama";
const greedyBody = (c: Case) => ({ model: modelOf(c), prompt: c.input_ids, max_tokens: 8, temperature: 0 });

async function complete(body: Record<string, unknown>) {
  const res = await t.post("/v1/completions", body);
  const json = await res.json();
  expect(res.status, JSON.stringify(json)).toBe(200);
  return CompletionSchema.parse(json);
}

describe("a model without tokenizer.json", () => {
  it("says so in /health", async () => {
    const health = RunnerHealthSchema.parse(await (await t.app.request("/health")).json());
    expect(health.mode).toBe("token_ids");
    expect(health.residentAdapters).toBe(3);
  });

  it.each(expected.cases.map((c) => [c.adapter ?? "base", c.input_ids.length, c] as const))(
    "%s, %i-token prompt: token_ids are HF's 8 greedy tokens and text is empty",
    async (_adapter, _length, c) => {
      const out = await complete(greedyBody(c));
      const choice = out.choices[0];
      expect(choice?.token_ids).toEqual(c.greedy);
      expect(choice?.text).toBe("");
      expect(choice?.finish_reason).toBe("length");
      expect(choice?.prompt_token_ids).toBeUndefined();
      expect(out.usage).toEqual({
        prompt_tokens: c.input_ids.length,
        completion_tokens: 8,
        total_tokens: c.input_ids.length + 8,
      });
    },
  );

  it("takes a list of token-id prompts, one choice each, echoing prompts with return_token_ids", async () => {
    const [a, b] = expected.cases.filter((c) => c.adapter === "all7") as [Case, Case];
    const out = await complete({
      ...greedyBody(a),
      prompt: [a.input_ids, b.input_ids],
      return_token_ids: true,
    });
    expect(out.choices.map((c) => [c.index, c.prompt_token_ids, c.token_ids])).toEqual([
      [0, a.input_ids, a.greedy],
      [1, b.input_ids, b.greedy],
    ]);
  });

  it("keys logprobs by token id, the greedy token first among the alternatives", async () => {
    const c = expected.cases.find((x) => x.adapter === "qv") as Case;
    const out = await complete({ ...greedyBody(c), logprobs: 2 });
    const lp = out.choices[0]?.logprobs;
    const names = c.greedy.map((id) => `token_id:${id}`);
    expect(lp?.tokens).toEqual(names);
    for (const [i, top] of (lp?.top_logprobs ?? []).entries()) {
      const entries = Object.entries(top ?? {});
      expect(entries).toHaveLength(2);
      expect(entries[0]?.[0]).toBe(names[i]);
      expect(entries[0]?.[1]).toBe(lp?.token_logprobs[i]);
      expect(entries[1]?.[1]).toBeLessThanOrEqual(entries[0]?.[1] as number);
    }
  });

  it("streams each choice's ids as they come, the prompt's ids once, in the first chunk", async () => {
    const [a, b] = expected.cases.filter((c) => c.adapter === "patterns") as [Case, Case];
    const res = await t.post("/v1/completions", {
      ...greedyBody(a),
      prompt: [a.input_ids, b.input_ids],
      stream: true,
      return_token_ids: true,
    });
    expect(res.status).toBe(200);
    const data = sseData(await res.text());
    expect(data.at(-1)).toBe("[DONE]");
    const choices = data.slice(0, -1).flatMap((d) => CompletionChunkSchema.parse(JSON.parse(d)).choices);
    for (const [index, c] of [a, b].entries()) {
      const mine = choices.filter((ch) => ch.index === index);
      expect(mine.flatMap((ch) => ch.token_ids ?? [])).toEqual(c.greedy);
      expect(mine.map((ch) => ch.text).join("")).toBe("");
      expect(mine.map((ch) => ch.prompt_token_ids)).toEqual([
        c.input_ids,
        ...mine.slice(1).map(() => undefined),
      ]);
      expect(mine.at(-1)?.finish_reason).toBe("length");
    }
  });

  it.each([
    ["a text prompt", "/v1/completions", { prompt: "Hello" }, "prompt", /send prompt as token ids/],
    [
      "a list of text prompts",
      "/v1/completions",
      { prompt: ["a", "b"] },
      "prompt",
      /send prompt as token ids/,
    ],
    [
      "a chat",
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "Hi" }], stream: true },
      "messages",
      /add tokenizer\.json \(and tokenizer_config\.json for chat\) to the model directory/,
    ],
    ["stop strings", "/v1/completions", { prompt: [5, 6], stop: ["\n"] }, "stop", /leave stop out/],
  ] as const)(
    "refuses %s, naming tokenizer.json and the remedy",
    async (_what, path, body, param, remedy) => {
      const res = await t.post(path, { model: "qv", ...body });
      expect(res.status).toBe(400);
      const error = await errorOf(res);
      expect(error.code).toBe("invalid_request");
      expect(error.param).toBe(param);
      expect(error.message).toContain('model "tiny-llama" has no tokenizer.json');
      expect(error.message).toContain("token-ids mode");
      expect(error.message).toMatch(remedy);
    },
  );
});
