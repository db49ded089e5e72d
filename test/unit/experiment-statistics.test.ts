import { describe, expect, it } from "vitest";
import {
  chiSquareSurvival,
  differenceInterval,
  lnGamma,
  meanInterval,
  nearestRankIndex,
  sampleRatioMismatch,
} from "../../src/experiments/stats.ts";

describe("chi-square survival", () => {
  it("matches textbook critical values", () => {
    // Critical values from standard chi-square tables (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.4).
    expect(chiSquareSurvival(3.841459, 1)).toBeCloseTo(0.05, 6);
    expect(chiSquareSurvival(10.827566, 1)).toBeCloseTo(0.001, 7);
    expect(chiSquareSurvival(5.991465, 2)).toBeCloseTo(0.05, 6);
    expect(chiSquareSurvival(16.266236, 3)).toBeCloseTo(0.001, 7);
    expect(chiSquareSurvival(0, 4)).toBe(1);
    expect(chiSquareSurvival(200, 1)).toBeLessThan(1e-40);
  });

  it("lnGamma agrees with factorials", () => {
    expect(lnGamma(1)).toBeCloseTo(0, 12);
    expect(lnGamma(11)).toBeCloseTo(Math.log(3628800), 10);
    expect(lnGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
  });
});

describe("sample-ratio mismatch", () => {
  it("raises no alarm on a fair 50/50 log and alarms on a 52/48 one of 10,000", () => {
    const fair = sampleRatioMismatch([5030, 4970], [5000, 5000]);
    expect(fair?.alarm).toBe(false);
    expect(fair?.pValue).toBeGreaterThan(0.5);
    const biased = sampleRatioMismatch([5200, 4800], [5000, 5000]);
    expect(biased?.chiSquare).toBeCloseTo(16, 10);
    expect(biased?.alarm).toBe(true);
    expect(biased?.pValue).toBeCloseTo(6.334e-5, 7);
  });

  it("uses the configured shares, not equal ones, and leaves zero-share arms out", () => {
    expect(sampleRatioMismatch([9010, 990, 0], [9000, 1000, 0])?.alarm).toBe(false);
    expect(sampleRatioMismatch([5000, 5000], [9000, 1000])?.alarm).toBe(true);
    expect(sampleRatioMismatch([10], [10_000])).toBeNull();
  });
});

describe("intervals and percentiles", () => {
  it("computes a mean's 95% interval and a Welch difference", () => {
    // Fifty 0s and fifty 1s: mean 0.5, sample variance 25/99.
    const m = { n: 100, sum: 50, sumSquares: 50 };
    const ci = meanInterval(m);
    const half = 1.959963984540054 * Math.sqrt(25 / 99 / 100);
    expect(ci?.mean).toBe(0.5);
    expect(ci?.ci95[0]).toBeCloseTo(0.5 - half, 12);
    const d = differenceInterval({ n: 100, sum: 70, sumSquares: 70 }, m);
    expect(d?.mean).toBeCloseTo(0.2, 12);
    expect(d?.ci95[0]).toBeGreaterThan(0.06);
    expect(differenceInterval({ n: 0, sum: 0, sumSquares: 0 }, m)).toBeNull();
  });

  it("picks nearest-rank indices", () => {
    expect(nearestRankIndex(100, 0.5)).toBe(49);
    expect(nearestRankIndex(100, 0.95)).toBe(94);
    expect(nearestRankIndex(1, 0.95)).toBe(0);
  });
});
