// The verdict `npm run demo:traffic` prints and the console shows: a variant is better (or worse) only when its
// whole 95% difference interval lies above (below) 0; a sample-ratio alarm withholds any winner; a cut variant
// never wins.
import { describe, expect, it } from "vitest";
import type { Results, VariantResult } from "../../src/contracts/experiments.ts";
import { describeVerdict, verdictOf } from "../../src/experiments/verdict.ts";

function variant(name: string, diff: [number, number, number] | null, extra: Partial<VariantResult> = {}) {
  return {
    variant: name,
    target: `${name}@1`,
    shadow: false,
    weight: 5000,
    state: "active",
    cutReason: null,
    n: 100,
    errors: 0,
    errorRate: 0,
    latencyMs: { p50: 10, p95: 20 },
    tokens: { prompt: 1, completion: 1 },
    feedback: { n: 100, mean: 0.5, ci95: [0.4, 0.6], labels: {} },
    diffToControl: diff === null ? null : { mean: diff[0], ci95: [diff[1], diff[2]] },
    ...extra,
  } satisfies VariantResult;
}

const results = (variants: VariantResult[], alarm = false): Results => ({
  route: "r",
  status: "running",
  version: 1,
  control: "control",
  variants: [variant("control", null), ...variants],
  srm: { n: 200, chiSquare: alarm ? 20 : 0.1, pValue: alarm ? 1e-5 : 0.7, alarm },
});

describe("verdictOf", () => {
  it("names the better variant with the larger difference as the winner", () => {
    const r = results([
      variant("a", [0.1, 0.02, 0.18]),
      variant("b", [0.2, 0.1, 0.3]),
      variant("c", [-0.2, -0.3, -0.1]),
    ]);
    const v = verdictOf(r);
    expect(v.variants.map((x) => [x.variant, x.kind])).toEqual([
      ["a", "better"],
      ["b", "better"],
      ["c", "worse"],
    ]);
    expect(v.winner).toBe("b");
    expect(describeVerdict(r, v)[1]).toBe(
      "b is better than control at 95% confidence: feedback +0.200 [+0.100, +0.300], the whole interval above 0",
    );
  });

  it("has no winner while the interval spans 0, without feedback, or for a cut variant", () => {
    const r = results([
      variant("a", [0.1, -0.01, 0.21]),
      variant("b", null),
      variant("c", [0.3, 0.2, 0.4], { state: "cut", cutReason: "error rate 0.4 > 0.05" }),
    ]);
    const v = verdictOf(r);
    expect(v.variants.map((x) => x.kind)).toEqual(["inconclusive", "no_feedback", "cut"]);
    expect(v.winner).toBeNull();
    expect(describeVerdict(r, v)[2]).toBe(
      "c was cut by a guardrail (error rate 0.4 > 0.05); its traffic goes to control",
    );
  });

  it("withholds the winner when the sample-ratio check alarms, and says why first", () => {
    const r = results([variant("a", [0.2, 0.1, 0.3])], true);
    const v = verdictOf(r);
    expect([v.trusted, v.winner]).toEqual([false, null]);
    expect(describeVerdict(r, v)[0]).toContain("sample-ratio check alarms");
  });
});
