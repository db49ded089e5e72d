// vLLM's sampling fields, sent to the real runner, change what it generates as vLLM defines them: logit_bias
// forces or bans a token, min_tokens holds eos back, ignore_eos runs to max_tokens, stop_token_ids stop (the
// token counted but not in the text unless include_stop_str_in_output), skip_special_tokens: false shows
// special tokens, repetition_penalty and min_p reshape the choice, continuous_usage_stats puts usage on every
// chunk, and the eos that ends a completion is in its logprobs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChatCompletion,
  ChatCompletionChunkSchema,
  ChatCompletionSchema,
  type Completion,
  CompletionChunkSchema,
  CompletionSchema,
} from "../../src/contracts/openai.ts";
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

const prompt = "The quick brown fox";
const messages = [{ role: "user", content: "Tell me about the river." }];
const greedy = { model: "demo-llama", temperature: 0, return_token_ids: true };
const tok = () => t.runner.deps.tokenizer;
/** The tokenizer's eos (<|eot_id|>), one of the runner's stop tokens. */
const eos = () => tok().eosTokenId as number;

async function complete(body: Record<string, unknown>): Promise<Completion> {
  const res = await t.post("/v1/completions", { ...greedy, prompt, ...body });
  const json = await res.json();
  expect(res.status, JSON.stringify(json)).toBe(200);
  return CompletionSchema.parse(json);
}

async function chat(body: Record<string, unknown>): Promise<ChatCompletion> {
  const res = await t.post("/v1/chat/completions", { ...greedy, messages, ...body });
  const json = await res.json();
  expect(res.status, JSON.stringify(json)).toBe(200);
  return ChatCompletionSchema.parse(json);
}

async function chunksOf(path: string, body: Record<string, unknown>): Promise<unknown[]> {
  const res = await t.post(path, { ...body, stream: true });
  expect(res.status).toBe(200);
  const data = sseData(await res.text());
  expect(data.at(-1)).toBe("[DONE]");
  return data.slice(0, -1).map((d) => JSON.parse(d));
}

const ids = (out: Completion) => out.choices[0]?.token_ids ?? [];

describe("logit_bias", () => {
  it("+100 on a token makes every greedy and sampled token that one", async () => {
    expect(ids(await complete({ max_tokens: 5, logit_bias: { "100": 100 } }))).toEqual([
      100, 100, 100, 100, 100,
    ]);
    const sampled = await complete({ max_tokens: 5, temperature: 1.5, seed: 3, logit_bias: { "100": 100 } });
    expect(ids(sampled)).toEqual([100, 100, 100, 100, 100]);
  });

  it("-100 on the greedy token makes greedy pick another", async () => {
    const [first] = ids(await complete({ max_tokens: 1 }));
    const banned = await complete({ max_tokens: 1, logit_bias: { [String(first)]: -100 } });
    expect(ids(banned)[0]).not.toBe(first);
  });

  it("refuses a token id outside the vocabulary, naming it", async () => {
    const res = await t.post("/v1/completions", { ...greedy, prompt, logit_bias: { "99999": 5 } });
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatchObject({ code: "invalid_request", param: "logit_bias.99999" });
  });
});

describe("eos, min_tokens and ignore_eos", () => {
  it("a completion biased to eos ends at once, with the eos in usage, token_ids and logprobs", async () => {
    const out = await complete({ max_tokens: 8, logit_bias: { [eos()]: 100 }, logprobs: 2 });
    const choice = out.choices[0];
    expect(choice?.finish_reason).toBe("stop");
    expect(choice?.token_ids).toEqual([eos()]);
    expect(out.usage.completion_tokens).toBe(1);
    expect(choice?.text).toBe("");
    expect(choice?.logprobs?.tokens).toEqual([tok().tokenText(eos())]);
    expect(choice?.logprobs?.token_logprobs).toHaveLength(1);

    const c = await chat({ max_tokens: 8, logit_bias: { [eos()]: 100 }, logprobs: true, top_logprobs: 1 });
    expect(c.choices[0]?.logprobs?.content?.map((l) => l.token)).toEqual([tok().tokenText(eos())]);
    expect(c.usage.completion_tokens).toBe(1);
  });

  it("streams the eos's logprob with the finish reason", async () => {
    const body = { ...greedy, messages, max_tokens: 8, logit_bias: { [eos()]: 100 }, logprobs: true };
    const chunks = (await chunksOf("/v1/chat/completions", body)).map((c) =>
      ChatCompletionChunkSchema.parse(c),
    );
    const last = chunks.at(-1)?.choices[0];
    expect(last?.finish_reason).toBe("stop");
    expect(last?.logprobs?.content?.map((l) => l.token)).toEqual([tok().tokenText(eos())]);
    const legacy = (
      await chunksOf("/v1/completions", {
        ...greedy,
        prompt,
        max_tokens: 8,
        logit_bias: { [eos()]: 100 },
        logprobs: 0,
      })
    ).map((c) => CompletionChunkSchema.parse(c));
    expect(legacy.flatMap((c) => c.choices.flatMap((ch) => ch.logprobs?.tokens ?? []))).toEqual([
      tok().tokenText(eos()),
    ]);
  });

  it("min_tokens holds the eos back until that many tokens exist", async () => {
    const out = await complete({ max_tokens: 8, min_tokens: 4, logit_bias: { [eos()]: 100 } });
    const got = ids(out);
    expect(out.choices[0]?.finish_reason).toBe("stop");
    expect(got).toHaveLength(5);
    expect(got.slice(0, 4).some((id) => t.runner.deps.stopTokenIds.includes(id))).toBe(false);
    expect(got[4]).toBe(eos());
    expect(out.usage.completion_tokens).toBe(5);
  });

  it("min_tokens holds stop strings back too", async () => {
    const base = await complete({ max_tokens: 6 });
    const text = base.choices[0]?.text ?? "";
    const stop = text.slice(0, 2);
    expect(stop.length).toBe(2);
    const early = await complete({ max_tokens: 6, stop: [stop] });
    expect(early.choices[0]?.finish_reason).toBe("stop");
    const held = await complete({ max_tokens: 6, stop: [stop], min_tokens: 6 });
    expect(held.choices[0]?.text).toBe(text);
    expect(held.choices[0]?.finish_reason).toBe("length");
  });

  it("ignore_eos runs to max_tokens through eos, whose text stays out unless skip_special_tokens is false", async () => {
    const out = await complete({ max_tokens: 6, ignore_eos: true, logit_bias: { [eos()]: 100 } });
    expect(out.choices[0]?.finish_reason).toBe("length");
    expect(ids(out)).toEqual(new Array(6).fill(eos()));
    expect(out.choices[0]?.text).toBe("");
    const shown = await complete({
      max_tokens: 3,
      ignore_eos: true,
      skip_special_tokens: false,
      logit_bias: { [eos()]: 100 },
    });
    expect(shown.choices[0]?.text).toBe(tok().tokenText(eos()).repeat(3));
  });
});

describe("stop_token_ids and include_stop_str_in_output", () => {
  it("stops at the first of the ids, counting it but leaving its text out", async () => {
    const base = ids(await complete({ max_tokens: 10 }));
    const stopId = base[3] as number;
    const at = base.indexOf(stopId);
    // any of the ids stops it: one that never comes changes nothing
    const unused = [...Array(500).keys()].find((id) => !base.includes(id)) as number;
    const out = await complete({ max_tokens: 10, stop_token_ids: [unused, stopId] });
    const choice = out.choices[0];
    expect(choice?.finish_reason).toBe("stop");
    expect(choice?.token_ids).toEqual(base.slice(0, at + 1));
    expect(out.usage.completion_tokens).toBe(at + 1);
    expect(choice?.text).toBe(tok().decode(base.slice(0, at), { skipSpecialTokens: true }));

    const kept = await complete({
      max_tokens: 10,
      stop_token_ids: [stopId],
      include_stop_str_in_output: true,
    });
    expect(kept.choices[0]?.text).toBe(tok().decode(base.slice(0, at + 1), { skipSpecialTokens: true }));
  });

  it("streamed, the stop token's id arrives with the finish reason", async () => {
    const base = ids(await complete({ max_tokens: 10 }));
    const stopId = base[2] as number;
    const chunks = (
      await chunksOf("/v1/completions", { ...greedy, prompt, max_tokens: 10, stop_token_ids: [stopId] })
    ).map((c) => CompletionChunkSchema.parse(c));
    const last = chunks.at(-1)?.choices[0];
    expect(last?.finish_reason).toBe("stop");
    expect(last?.token_ids).toEqual([stopId]);
  });

  it("include_stop_str_in_output keeps a matched stop string", async () => {
    const text = (await complete({ max_tokens: 8 })).choices[0]?.text ?? "";
    const stop = text.slice(3, 5);
    const cut = (await complete({ max_tokens: 8, stop: [stop] })).choices[0]?.text ?? "";
    const kept = (await complete({ max_tokens: 8, stop: [stop], include_stop_str_in_output: true }))
      .choices[0]?.text;
    expect(kept).toBe(cut + stop);
    expect(text.startsWith(kept ?? "?")).toBe(true);
  });

  it("refuses an id outside the vocabulary", async () => {
    const res = await t.post("/v1/completions", { ...greedy, prompt, stop_token_ids: [1, 99999] });
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatchObject({ code: "invalid_request", param: "stop_token_ids[1]" });
  });
});

describe("repetition_penalty and min_p", () => {
  it("a strong repetition_penalty keeps greedy off every token already in the prompt or the output", async () => {
    const plain = await complete({ max_tokens: 16 });
    const promptIds = tok().encode(prompt);
    const seen = (out: Completion) => {
      const all = [...promptIds];
      let repeats = 0;
      for (const id of ids(out)) {
        if (all.includes(id)) repeats++;
        all.push(id);
      }
      return repeats;
    };
    // the random demo weights repeat themselves under greedy decoding; the penalty is what stops it
    expect(seen(plain)).toBeGreaterThan(0);
    const penalised = await complete({ max_tokens: 16, repetition_penalty: 1000 });
    expect(seen(penalised)).toBe(0);
    expect(ids(penalised)).not.toEqual(ids(plain));
  });

  it("min_p 1 keeps only the most likely token: sampling equals greedy", async () => {
    const want = ids(await complete({ max_tokens: 10 }));
    for (const seed of [1, 2]) {
      expect(ids(await complete({ max_tokens: 10, temperature: 1.8, seed, min_p: 1 }))).toEqual(want);
    }
    // and without it those seeds wander
    expect(ids(await complete({ max_tokens: 10, temperature: 1.8, seed: 1 }))).not.toEqual(want);
  });
});

describe("stream_options.continuous_usage_stats", () => {
  it("chat: every chunk carries the usage so far; the final usage chunk the total", async () => {
    const body = {
      ...greedy,
      messages,
      max_tokens: 6,
      stream_options: { include_usage: true, continuous_usage_stats: true },
    };
    const chunks = (await chunksOf("/v1/chat/completions", body)).map((c) =>
      ChatCompletionChunkSchema.parse(c),
    );
    const usages = chunks.map((c) => c.usage);
    expect(usages.every((u) => u != null)).toBe(true);
    const counts = usages.map((u) => u?.completion_tokens ?? -1);
    expect(counts[0]).toBe(0);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    const final = chunks.at(-1);
    expect(final?.choices).toEqual([]);
    expect(final?.usage?.completion_tokens).toBe(6);
    expect(new Set(usages.map((u) => u?.prompt_tokens)).size).toBe(1);
    for (const u of usages)
      expect(u?.total_tokens).toBe((u?.prompt_tokens ?? 0) + (u?.completion_tokens ?? 0));
  });

  it("completions: each choice's chunks count that choice; without include_usage nothing is added", async () => {
    const body = {
      ...greedy,
      prompt: ["The fox", "A river runs"],
      max_tokens: 4,
      stream_options: { include_usage: true, continuous_usage_stats: true },
    };
    const chunks = (await chunksOf("/v1/completions", body)).map((c) => CompletionChunkSchema.parse(c));
    const perChoice = chunks.filter((c) => c.choices.length === 1);
    for (const c of perChoice) {
      const index = c.choices[0]?.index as number;
      expect(c.usage?.prompt_tokens).toBe(tok().encode(body.prompt[index] as string).length);
    }
    expect(
      perChoice
        .filter((c) => c.choices[0]?.finish_reason === "length")
        .map((c) => c.usage?.completion_tokens),
    ).toEqual([4, 4]);
    const off = (
      await chunksOf("/v1/completions", { ...body, stream_options: { continuous_usage_stats: true } })
    ).map((c) => CompletionChunkSchema.parse(c));
    expect(off.every((c) => c.usage === undefined)).toBe(true);
  });
});
