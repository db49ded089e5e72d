import { describe, expect, it } from "vitest";
import { formatReset, fullBucket, MINUTE_MS, refill, view, waitFor } from "../../src/limits/token-bucket.ts";

describe("token buckets per minute", () => {
  it("refill at the limit per minute and never above it", () => {
    const empty = { level: 0, at: 0 };
    expect(refill(empty, 60, 1000).level).toBeCloseTo(1);
    expect(refill(empty, 60, 30_000).level).toBeCloseTo(30);
    expect(refill(empty, 60, 10 * MINUTE_MS).level).toBe(60);
    // A clock that went back refills nothing and keeps the later time.
    expect(refill({ level: 5, at: 10_000 }, 60, 5_000)).toEqual({ level: 5, at: 10_000 });
  });

  it("show whole units left, the time to full, and the wait for the next unit", () => {
    expect(view(fullBucket(100, 0), 100)).toEqual({ limit: 100, remaining: 100, resetMs: 0 });
    expect(view({ level: 49.6, at: 0 }, 100)).toEqual({ limit: 100, remaining: 49, resetMs: 30_240 });
    // A bucket in debt (tokens charged after the fact) shows 0 and waits out the debt.
    expect(view({ level: -20, at: 0 }, 60).remaining).toBe(0);
    expect(waitFor({ level: -20, at: 0 }, 60, 1)).toBe(21_000);
    expect(waitFor({ level: 3, at: 0 }, 60, 1)).toBe(0);
    expect(waitFor({ level: 0.5, at: 0 }, 60, 1)).toBe(500);
  });

  it("print durations as OpenAI's x-ratelimit-reset-* headers do", () => {
    expect(formatReset(0)).toBe("0ms");
    expect(formatReset(20.2)).toBe("21ms");
    expect(formatReset(1000)).toBe("1s");
    expect(formatReset(2250)).toBe("2.25s");
    expect(formatReset(6 * 60_000)).toBe("6m0s");
    expect(formatReset(3_723_500)).toBe("1h2m3.5s");
  });
});
