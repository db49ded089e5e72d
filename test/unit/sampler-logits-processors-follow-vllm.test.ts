// The sampler's vLLM logits processors change the distribution exactly as vLLM and Hugging Face define them:
// logit_bias adds to a logit, min_tokens' suppression bans the stop tokens, the repetition penalty is
// transformers' RepetitionPenaltyLogitsProcessor over prompt and output, min_p drops tokens below a share of
// the top token's probability. Logprobs stay those of the raw distribution throughout.
import { describe, expect, it } from "vitest";
import {
  processLogits,
  repetitionPenalised,
  type SamplingParams,
  sampleToken,
  tokenLogprobs,
} from "../../gpu-runner/engine/sampler.ts";
import { createRng } from "../../src/random.ts";

const logits = Float32Array.from([1, 3, 2, 3, -1, 0.5]);
const params = (p: Partial<SamplingParams>): SamplingParams => ({
  temperature: 1,
  topP: 1,
  topK: 0,
  topLogprobs: null,
  ...p,
});

function softmax(values: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(values));
  const exp = Array.from(values, (v) => Math.exp(v - max));
  const z = exp.reduce((a, b) => a + b, 0);
  return exp.map((e) => e / z);
}

function frequencies(
  source: Float32Array,
  p: SamplingParams,
  n: number,
  context: Parameters<typeof sampleToken>[4] = {},
): number[] {
  const rng = createRng(11);
  const counts = new Array(source.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampleToken(source, p, rng, undefined, context).token]++;
  return counts.map((c) => c / n);
}

describe("logit_bias", () => {
  it("adds the bias to the token's logit, and nothing else", () => {
    const out = processLogits(logits, params({ logitBias: new Map([[4, 2.5]]) }));
    expect(Array.from(out)).toEqual([1, 3, 2, 3, 1.5, 0.5]);
    expect(Array.from(logits)).toEqual([1, 3, 2, 3, -1, 0.5]);
  });

  it("+100 forces a token, greedy or sampled; -100 bans it", () => {
    const force = params({ logitBias: new Map([[4, 100]]) });
    expect(sampleToken(logits, { ...force, temperature: 0 }, createRng(0)).token).toBe(4);
    expect(frequencies(logits, force, 500)[4]).toBe(1);
    const ban = params({ logitBias: new Map([[1, -100]]), temperature: 0 });
    expect(sampleToken(logits, ban, createRng(0)).token).toBe(3);
    expect(frequencies(logits, { ...ban, temperature: 1 }, 5000)[1]).toBe(0);
  });

  it("a bias b multiplies the token's odds by e^b when sampling", () => {
    const freq = frequencies(logits, params({ logitBias: new Map([[0, 1]]) }), 40000);
    const want = softmax([2, 3, 2, 3, -1, 0.5]);
    for (const [id, p] of want.entries()) expect(freq[id]).toBeCloseTo(p, 2);
  });

  it("leaves the reported logprobs those of the raw distribution", () => {
    const biased = sampleToken(
      logits,
      params({ temperature: 0, topLogprobs: 2, logitBias: new Map([[4, 100]]) }),
      createRng(0),
    );
    expect(biased.token).toBe(4);
    const lse = Math.log(Array.from(logits, Math.exp).reduce((a, b) => a + b, 0));
    expect(biased.logprob).toBeCloseTo(-1 - lse, 6);
    expect(biased.top.map((t) => t.token)).toEqual([1, 3]);
  });
});

describe("suppression (min_tokens)", () => {
  it("never picks a suppressed token, greedy or sampled", () => {
    expect(
      sampleToken(logits, params({ temperature: 0 }), createRng(0), undefined, { suppress: [1] }).token,
    ).toBe(3);
    const freq = frequencies(logits, params({}), 5000, { suppress: [1, 3] });
    expect(freq[1]).toBe(0);
    expect(freq[3]).toBe(0);
    const want = softmax([1, Number.NEGATIVE_INFINITY, 2, Number.NEGATIVE_INFINITY, -1, 0.5]);
    for (const [id, p] of want.entries()) expect(freq[id]).toBeCloseTo(p, 1);
  });

  it("wins over a logit bias that would force the token", () => {
    const p = params({ temperature: 0, logitBias: new Map([[2, 100]]) });
    expect(sampleToken(logits, p, createRng(0), undefined, { suppress: [2] }).token).toBe(1);
  });
});

describe("repetition_penalty", () => {
  // transformers' RepetitionPenaltyLogitsProcessor, by hand:
  //   score = gather(scores, input_ids); score = where(score < 0, score * penalty, score / penalty)
  // over input_ids = prompt + generated = [0, 1, 3]; penalty 2
  const raw = Float32Array.from([2.0, -1.0, 1.5, 0.5, -0.2]);
  // logits are float32, so the expectations are too
  const hf = [1.0, -2.0, 1.5, 0.25, -0.2].map(Math.fround);

  it("equals transformers' math on hand-computed logits, over prompt and output tokens", () => {
    const out = processLogits(raw, params({ repetitionPenalty: 2 }), {
      promptTokens: new Set([0, 1]),
      counts: new Map([[3, 1]]),
    });
    expect(Array.from(out)).toEqual(hf);
    expect(repetitionPenalised(0, 2)).toBe(0);
  });

  it("greedy then picks transformers' token: the unseen 2 overtakes the seen 0", () => {
    const greedy = params({ temperature: 0, repetitionPenalty: 2 });
    expect(sampleToken(raw, { ...greedy, repetitionPenalty: 1 }, createRng(0)).token).toBe(0);
    const picked = sampleToken(raw, greedy, createRng(0), new Map([[3, 1]]), {
      promptTokens: new Set([0, 1]),
    });
    expect(picked.token).toBe(2);
  });

  it("below 1 it favours seen tokens instead", () => {
    const out = processLogits(raw, params({ repetitionPenalty: 0.5 }), { promptTokens: new Set([3]) });
    expect(out[3]).toBeCloseTo(1.0, 6);
    expect(Array.from(out).filter((_, id) => id !== 3)).toEqual([2.0, -1.0, 1.5, -0.2].map(Math.fround));
  });

  it("applies before presence and frequency, as vLLM's apply_penalties does", () => {
    const out = processLogits(
      raw,
      params({ repetitionPenalty: 2, presencePenalty: 0.5, frequencyPenalty: 0.25 }),
      {
        counts: new Map([[0, 2]]),
      },
    );
    // 2.0 / 2 - 2·0.25 - 0.5 = 0
    expect(out[0]).toBeCloseTo(0, 6);
  });
});

describe("min_p", () => {
  // softmax of [1,3,2,3,-1,.5] relative to the top: 1 and 3 at 1, 2 at e^-1 ≈ .37, 0 at e^-2 ≈ .14
  it("drops tokens whose probability is below min_p × the top one's, and renormalises the rest", () => {
    const freq = frequencies(logits, params({ minP: 0.3 }), 20000);
    const want = softmax([
      Number.NEGATIVE_INFINITY,
      3,
      2,
      3,
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ]);
    for (const [id, p] of want.entries()) expect(freq[id]).toBeCloseTo(p, 1);
    expect([freq[0], freq[4], freq[5]]).toEqual([0, 0, 0]);
    // 0.1 < e^-2 keeps token 0 too
    expect(frequencies(logits, params({ minP: 0.1 }), 20000)[0]).toBeGreaterThan(0);
  });

  it("measures probabilities at the request's temperature", () => {
    // at temperature 2 token 2 is at e^-0.5 ≈ .61 of the top, so min_p .5 keeps it; at 1 (.37) it does not
    expect(frequencies(logits, params({ minP: 0.5, temperature: 2 }), 5000)[2]).toBeGreaterThan(0);
    expect(frequencies(logits, params({ minP: 0.5, temperature: 1 }), 5000)[2]).toBe(0);
  });

  it("min_p 1 keeps only the most likely tokens", () => {
    const freq = frequencies(logits, params({ minP: 1 }), 2000);
    expect((freq[1] as number) + (freq[3] as number)).toBe(1);
  });
});

describe("tokenLogprobs (prompt_logprobs entries)", () => {
  it("gives the token's log-softmax, its vLLM rank and the top k ranked 1..k", () => {
    const lse = Math.log(Array.from(logits, Math.exp).reduce((a, b) => a + b, 0));
    const entry = tokenLogprobs(logits, 2, 2);
    expect(entry.logprob).toBeCloseTo(2 - lse, 6);
    // two tokens (1 and 3) are more likely, so 2 ranks third
    expect(entry.rank).toBe(3);
    expect(entry.top.map((t) => [t.token, t.rank])).toEqual([
      [1, 1],
      [3, 2],
    ]);
    // ties count as at least as likely, as vLLM counts them
    expect(tokenLogprobs(logits, 3, 0).rank).toBe(2);
    expect(tokenLogprobs(logits, 3, 0).top).toEqual([]);
  });
});
