// The official `openai` client (the SDK users run) against the runner directly and through the edge, on the
// same pipeline `npm start` runs (test/e2e/support/pipeline.ts): every refused field, and every invalid value
// of a supported one, is a BadRequestError whose `param` names it; each vLLM sampling field changes the
// output as specified; a prompt plus max_tokens beyond the context is a BadRequestError; an unknown model a
// NotFoundError. Both targets must answer alike, so the edge adds nothing and loses nothing on the way.
import OpenAI, { BadRequestError, NotFoundError } from "openai";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  Completion,
  CompletionCreateParamsNonStreaming,
} from "openai/resources";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHAT_BASE, paramOf, refusedRequests, requestFor } from "../helpers/openai-field-cases.ts";
import { type Pipeline, startPipeline } from "./support/pipeline.ts";

let p: Pipeline;
/** The demo tokenizer's eos (<|eot_id|>), read from the runner's /tokenize. */
let eos: number;

beforeAll(async () => {
  p = await startPipeline({ runners: 1 });
  const runner = p.runners[0];
  if (runner === undefined) throw new Error("the pipeline started no runner");
  const res = await p.runnerCall(runner, "POST", "/tokenize", {
    prompt: "<|eot_id|>",
    add_special_tokens: false,
  });
  const { tokens } = (await res.json()) as { tokens: number[] };
  expect(tokens).toHaveLength(1);
  eos = tokens[0] as number;
});
afterAll(async () => {
  await p?.stop();
});

const TARGETS = {
  runner: () =>
    new OpenAI({ baseURL: `${p.runners[0]?.url}/v1`, apiKey: p.runnerToken, maxRetries: 0, timeout: 60_000 }),
  edge: () => new OpenAI({ baseURL: `${p.edgeUrl}/v1`, apiKey: p.tenantKey, maxRetries: 0, timeout: 60_000 }),
} as const;

/** vLLM's response fields the SDK's types do not name. */
type VllmChoice = Completion["choices"][number] & {
  token_ids?: number[];
  prompt_token_ids?: number[];
  prompt_logprobs?: (Record<
    string,
    { logprob: number; rank: number | null; decoded_token: string | null }
  > | null)[];
};
type VllmChat = ChatCompletion & { prompt_token_ids?: number[]; prompt_logprobs?: unknown[] };

/** The error a call rejects with; fails when it resolves. */
async function rejection(call: Promise<unknown>, what = "the call"): Promise<unknown> {
  try {
    await call;
  } catch (error) {
    return error;
  }
  throw new Error(`${what} succeeded; a refusal was expected`);
}

describe.each(Object.keys(TARGETS) as (keyof typeof TARGETS)[])(
  "the openai client against the %s",
  (target) => {
    let client: OpenAI;
    beforeAll(() => {
      client = TARGETS[target]();
      expect(p.base).toBe(CHAT_BASE.model);
    });

    const model = () => p.base;
    const prompt = "The quick brown fox";

    /** A greedy completion with vLLM's extras, as the SDK sends undocumented params: as they are. */
    async function complete(
      extra: Record<string, unknown>,
    ): Promise<{ out: Completion; choice: VllmChoice }> {
      const body = { model: model(), prompt, temperature: 0, return_token_ids: true, ...extra };
      const out = await client.completions.create(body as unknown as CompletionCreateParamsNonStreaming);
      return { out, choice: out.choices[0] as VllmChoice };
    }

    describe("refusals", () => {
      const cases = refusedRequests().map((r) => ({ ...r, field: r.c.field }));

      it(`refuses all ${cases.length} refused values with BadRequestError naming the param`, async () => {
        for (const { endpoint, c, value } of cases) {
          // the cases name the demo model, which is the pipeline's base
          const body = requestFor(endpoint, c, value);
          const call =
            endpoint === "chat"
              ? client.chat.completions.create(body as unknown as ChatCompletionCreateParamsNonStreaming)
              : client.completions.create(body as unknown as CompletionCreateParamsNonStreaming);
          const what = `${endpoint} ${c.field} = ${JSON.stringify(value)}`;
          const error = await rejection(call, what);
          expect(error, what).toBeInstanceOf(BadRequestError);
          expect((error as BadRequestError).param, what).toBe(paramOf(c));
          expect((error as BadRequestError).code, what).toBe("invalid_request");
        }
      });

      it("an unknown model is a NotFoundError", async () => {
        const error = await rejection(
          client.chat.completions.create({
            model: "no-such-model",
            messages: [{ role: "user", content: "hi" }],
          }),
        );
        expect(error).toBeInstanceOf(NotFoundError);
      });

      it("a prompt plus max_tokens beyond the context is a BadRequestError on max_tokens, in vLLM's words", async () => {
        const error = await rejection(
          client.completions.create({ model: model(), prompt, max_tokens: 100_000 }),
        );
        expect(error).toBeInstanceOf(BadRequestError);
        expect((error as BadRequestError).param).toBe("max_tokens");
        expect((error as BadRequestError).message).toMatch(
          /maximum context length is \d+ tokens\. However, you requested/,
        );
        const chat = await rejection(
          client.chat.completions.create({
            model: model(),
            messages: [{ role: "user", content: "hi" }],
            max_completion_tokens: 100_000,
          }),
        );
        expect((chat as BadRequestError).param).toBe("max_completion_tokens");
      });
    });

    describe("vLLM sampling fields", () => {
      it("logit_bias +100 forces a token", async () => {
        const { choice } = await complete({ max_tokens: 4, logit_bias: { "100": 100 } });
        expect(choice.token_ids).toEqual([100, 100, 100, 100]);
      });

      it("min_tokens delays eos; ignore_eos runs to max_tokens", async () => {
        const towardEos = { max_tokens: 8, logit_bias: { [String(eos)]: 100 } };
        const now = await complete(towardEos);
        expect(now.choice.finish_reason).toBe("stop");
        expect(now.out.usage?.completion_tokens).toBe(1);
        const later = await complete({ ...towardEos, min_tokens: 3 });
        expect(later.choice.finish_reason).toBe("stop");
        expect(later.choice.token_ids).toHaveLength(4);
        expect(later.choice.token_ids?.at(-1)).toBe(eos);
        const never = await complete({ ...towardEos, ignore_eos: true });
        expect(never.choice.finish_reason).toBe("length");
        expect(never.out.usage?.completion_tokens).toBe(8);
      });

      it("stop_token_ids stop generation with finish_reason stop", async () => {
        const base = (await complete({ max_tokens: 10 })).choice.token_ids ?? [];
        const stopId = base[2] as number;
        const { choice } = await complete({ max_tokens: 10, stop_token_ids: [stopId] });
        expect(choice.finish_reason).toBe("stop");
        expect(choice.token_ids).toEqual(base.slice(0, base.indexOf(stopId) + 1));
      });

      it("prompt_logprobs are present, one per prompt token, the first null", async () => {
        const { choice } = await complete({ max_tokens: 2, prompt_logprobs: 2 });
        const entries = choice.prompt_logprobs ?? [];
        expect(entries).toHaveLength(choice.prompt_token_ids?.length ?? -1);
        expect(entries[0]).toBeNull();
        expect(entries[1]?.[String(choice.prompt_token_ids?.[1])]?.logprob).toBeLessThanOrEqual(0);
        const chat = (await client.chat.completions.create({
          model: model(),
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 2,
          prompt_logprobs: 0,
        } as unknown as ChatCompletionCreateParamsNonStreaming)) as VllmChat;
        expect(chat.prompt_logprobs?.length).toBe(chat.usage?.prompt_tokens);
      });

      it("repetition_penalty and min_p change the choice", async () => {
        const plain = (await complete({ max_tokens: 12 })).choice.token_ids;
        expect((await complete({ max_tokens: 12, repetition_penalty: 1000 })).choice.token_ids).not.toEqual(
          plain,
        );
        // min_p 1 keeps only the top token, so a hot sample is greedy
        expect(
          (await complete({ max_tokens: 12, temperature: 1.8, seed: 5, min_p: 1 })).choice.token_ids,
        ).toEqual(plain);
      });

      it("stream_options.continuous_usage_stats puts usage on every chunk", async () => {
        const stream = await client.chat.completions.create({
          model: model(),
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 4,
          temperature: 0,
          stream: true,
          stream_options: { include_usage: true, continuous_usage_stats: true } as { include_usage: boolean },
        });
        const chunks: ChatCompletionChunk[] = [];
        for await (const chunk of stream) chunks.push(chunk);
        expect(chunks.length).toBeGreaterThan(2);
        expect(chunks.every((c) => c.usage != null)).toBe(true);
        expect(chunks.at(-1)?.usage?.completion_tokens).toBe(4);
      });

      it("logprobs include the eos that ended the completion", async () => {
        const out = await client.chat.completions.create({
          model: model(),
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 4,
          logprobs: true,
          logit_bias: { [String(eos)]: 100 },
        });
        expect(out.choices[0]?.finish_reason).toBe("stop");
        expect(out.choices[0]?.logprobs?.content?.map((l) => l.token)).toEqual(["<|eot_id|>"]);
        expect(out.usage?.completion_tokens).toBe(1);
      });
    });
  },
);
