// vLLM's prompt_logprobs from the real runner: per prompt token (the first null) the logprob and rank of the
// actual token and the top k, equal to what the runner reports for that token when it is generated after the
// same prefix; the completion is the one the request gets without prompt_logprobs; chat carries them on the
// response; stream: true refuses them, as vLLM does.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionSchema, type Completion, CompletionSchema } from "../../src/contracts/openai.ts";
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

const greedy = { model: "demo-llama", temperature: 0 };

async function complete(body: Record<string, unknown>): Promise<Completion> {
  const res = await t.post("/v1/completions", { ...greedy, ...body });
  const json = await res.json();
  expect(res.status, JSON.stringify(json)).toBe(200);
  return CompletionSchema.parse(json);
}

describe("prompt_logprobs", () => {
  const promptIds = [5, 120, 77, 301, 42, 9];

  it("gives, per prompt token after the first, the logprob the runner reports when it generates that token", async () => {
    const k = 3;
    const out = await complete({
      prompt: promptIds,
      max_tokens: 2,
      prompt_logprobs: k,
      return_token_ids: true,
    });
    const entries = out.choices[0]?.prompt_logprobs;
    expect(entries).toHaveLength(promptIds.length);
    expect(entries?.[0]).toBeNull();
    for (let i = 1; i < promptIds.length; i++) {
      const entry = entries?.[i] ?? {};
      const actual = entry[String(promptIds[i])];
      expect(actual, `position ${i}`).toBeDefined();
      // the same prefix, generating one token with its top-k logprobs
      const biased = await complete({
        prompt: promptIds.slice(0, i),
        max_tokens: 1,
        logprobs: k,
        // force the actual token so its own logprob is reported; logprobs stay the raw distribution's
        logit_bias: { [String(promptIds[i])]: 100 },
      });
      const lp = biased.choices[0]?.logprobs;
      expect(actual?.logprob).toBeCloseTo(lp?.token_logprobs[0] as number, 4);
      const top = Object.values(lp?.top_logprobs[0] ?? {}).sort((a, b) => b - a);
      const ranked = Object.entries(entry)
        .filter(([, v]) => v.rank !== null && v.rank <= k)
        .sort(([, a], [, b]) => (a.rank as number) - (b.rank as number));
      expect(ranked.map(([, v]) => v.rank)).toEqual([1, 2, 3]);
      for (const [j, [id, v]] of ranked.entries()) {
        expect(v.logprob, `position ${i} rank ${j + 1}`).toBeCloseTo(top[j] as number, 4);
        expect(v.decoded_token).toBe(t.runner.deps.tokenizer.tokenText(Number(id)));
      }
      // rank counts the tokens at least as likely as the actual one
      const better = Object.values(entry).filter((v) => v.logprob > (actual?.logprob ?? 0)).length;
      expect(actual?.rank).toBeGreaterThan(better);
      expect(Object.keys(entry).length).toBe(
        actual?.rank !== null && (actual?.rank as number) <= k ? k : k + 1,
      );
    }
  });

  it("leaves the completion as it is without prompt_logprobs, and 0 gives the actual token only", async () => {
    const body = { prompt: "The quick brown fox", max_tokens: 12, return_token_ids: true };
    const plain = await complete(body);
    const scored = await complete({ ...body, prompt_logprobs: 0 });
    expect(scored.choices[0]?.token_ids).toEqual(plain.choices[0]?.token_ids);
    expect(scored.choices[0]?.text).toBe(plain.choices[0]?.text);
    expect(plain.choices[0]?.prompt_logprobs).toBeUndefined();
    const prompt = plain.choices[0]?.prompt_token_ids ?? [];
    const entries = scored.choices[0]?.prompt_logprobs ?? [];
    expect(entries).toHaveLength(prompt.length);
    for (const [i, entry] of entries.entries()) {
      if (i === 0) expect(entry).toBeNull();
      else expect(Object.keys(entry ?? {})).toEqual([String(prompt[i])]);
    }
  });

  it("scores each prompt of a batch on its own choice", async () => {
    const out = await complete({
      prompt: [
        [5, 6, 7],
        [8, 9],
      ],
      max_tokens: 1,
      prompt_logprobs: 1,
    });
    expect(out.choices.map((c) => c.prompt_logprobs?.length)).toEqual([3, 2]);
  });

  it("chat: on the response, one entry per prompt token", async () => {
    const res = await t.post("/v1/chat/completions", {
      ...greedy,
      messages: [{ role: "user", content: "hi there" }],
      max_tokens: 3,
      prompt_logprobs: 2,
      return_token_ids: true,
    });
    const out = ChatCompletionSchema.parse(await res.json());
    expect(out.prompt_logprobs).toHaveLength(out.prompt_token_ids?.length ?? -1);
    expect(out.prompt_logprobs?.[0]).toBeNull();
    expect(out.prompt_logprobs?.[1]?.[String(out.prompt_token_ids?.[1])]).toBeDefined();
  });

  it("refuses stream: true, naming prompt_logprobs", async () => {
    const res = await t.post("/v1/completions", {
      ...greedy,
      prompt: "hi",
      prompt_logprobs: 1,
      stream: true,
    });
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatchObject({ code: "invalid_request", param: "prompt_logprobs" });
  });
});
