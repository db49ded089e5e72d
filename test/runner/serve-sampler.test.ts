import { describe, expect, it } from "vitest";
import { createRng, foldSeed } from "../../src/random.ts";
import { argmax, type SamplingParams, sampleToken, topIds } from "../../gpu-runner/engine/sampler.ts";

const logits = Float32Array.from([1, 3, 2, 3, -1, 0.5]);
const params = (p: Partial<SamplingParams>): SamplingParams => ({
  temperature: 1,
  topP: 1,
  topK: 0,
  topLogprobs: null,
  ...p,
});

function histogram(p: SamplingParams, n: number, seed = 1): number[] {
  const rng = createRng(seed);
  const counts = new Array(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampleToken(logits, p, rng).token]++;
  return counts;
}

describe("sampler", () => {
  it("greedy takes the highest logit, the lowest id on ties", () => {
    expect(argmax(logits)).toBe(1);
    expect(sampleToken(logits, params({ temperature: 0 }), createRng(0)).token).toBe(1);
    expect(topIds(logits, 3)).toEqual([1, 3, 2]);
    const wide = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i));
    const sorted = Array.from(wide.keys()).sort((a, b) => (wide[b] as number) - (wide[a] as number));
    expect(topIds(wide, 100)).toEqual(sorted.slice(0, 100));
    expect(topIds(wide, 10)).toEqual(sorted.slice(0, 10));
  });

  it("top_k keeps only the k best, top_p the smallest nucleus", () => {
    const k2 = histogram(params({ topK: 2 }), 2000);
    expect(k2.filter((c, id) => c > 0 && id !== 1 && id !== 3)).toEqual([]);
    expect(k2[1]).toBeGreaterThan(800);
    // softmax of [1,3,2,3,-1,.5]: p(1)=p(3)≈.39, p(2)≈.14; top_p .7 keeps {1, 3}, .8 adds 2
    expect(histogram(params({ topP: 0.7 }), 2000).filter((c, id) => c > 0 && id !== 1 && id !== 3)).toEqual(
      [],
    );
    const p8 = histogram(params({ topP: 0.8 }), 2000);
    expect(p8[2]).toBeGreaterThan(0);
    expect(p8[0]).toBe(0);
  });

  it("matches the softmax at temperature 1 and sharpens at low temperature", () => {
    const n = 20000;
    const counts = histogram(params({}), n);
    const z = Array.from(logits, Math.exp).reduce((a, b) => a + b, 0);
    for (const [id, l] of logits.entries())
      expect((counts[id] as number) / n).toBeCloseTo(Math.exp(l) / z, 1);
    const cold = histogram(params({ temperature: 0.05 }), 2000);
    expect((cold[1] as number) + (cold[3] as number)).toBe(2000);
  });

  it("is reproducible per seed", () => {
    expect(histogram(params({}), 50, 7)).toEqual(histogram(params({}), 50, 7));
    const a = Array.from(
      { length: 20 },
      (
        (r) => () =>
          r.nextU32()
      )(createRng(2 ** 40 + 3)),
    );
    const b = Array.from(
      { length: 20 },
      (
        (r) => () =>
          r.nextU32()
      )(createRng(3)),
    );
    expect(a).not.toEqual(b);
    expect(foldSeed(2 ** 40 + 3)).not.toBe(foldSeed(3));
  });

  it("applies presence and frequency penalties to tokens already generated", () => {
    const greedy = params({ temperature: 0, topLogprobs: 1 });
    const counts = new Map([[1, 2]]);
    // token 1 drops to 3 - 2·0.6 = 1.8, so token 3 (also 3, untouched) wins
    expect(sampleToken(logits, { ...greedy, frequencyPenalty: 0.6 }, createRng(0), counts).token).toBe(3);
    const both = new Map([
      [1, 1],
      [3, 1],
    ]);
    expect(sampleToken(logits, { ...greedy, presencePenalty: 1.5 }, createRng(0), both).token).toBe(2);
    // logprobs stay those of the raw distribution
    const raw = sampleToken(logits, greedy, createRng(0));
    const out = sampleToken(logits, { ...greedy, presencePenalty: 1.5 }, createRng(0), both);
    expect(out.top[0]?.token).toBe(raw.top[0]?.token);
  });

  it("reports log-softmax logprobs of the raw distribution, best first", () => {
    const out = sampleToken(logits, params({ temperature: 0, topLogprobs: 3 }), createRng(0));
    const lse = Math.log(Array.from(logits, Math.exp).reduce((a, b) => a + b, 0));
    expect(out.logprob).toBeCloseTo(3 - lse, 6);
    expect(out.top.map((t) => t.token)).toEqual([1, 3, 2]);
    expect(out.top[2]?.logprob).toBeCloseTo(2 - lse, 6);
  });
});
