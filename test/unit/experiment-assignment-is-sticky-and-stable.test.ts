import { describe, expect, it } from "vitest";
import { assign } from "../../src/experiments/assign.ts";
import { assignmentBucket, bucketOf, fnv1a32 } from "../../src/experiments/hash.ts";
import {
  initialRanges,
  ownerOf,
  type RangedVariant,
  rangeProblems,
  rebalance,
} from "../../src/experiments/ranges.ts";
import type { RouteConfig } from "../../src/contracts/experiments.ts";

const subjects = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

function split(variants: RangedVariant[], route = "bot", salt = "s1"): string[] {
  return subjects.map((s) => ownerOf(variants, assignmentBucket(route, salt, s)));
}

describe("assignment hash", () => {
  it("matches FNV-1a 32 and GrowthBook's v2 test vector (seed feature, id 123 → 0.5231)", () => {
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(bucketOf("feature", "123")).toBe(5231);
  });

  it("gives the README's test vectors", () => {
    expect(assignmentBucket("support-bot", "s1", "alice")).toBe(2659);
    expect(assignmentBucket("support-bot", "s1", "bob")).toBe(6090);
    expect(assignmentBucket("support-bot", "s2", "alice")).toBe(6265);
    expect(assignmentBucket("faq", "x", "user-42")).toBe(7473);
    expect(assignmentBucket("support-bot", "s1", "ünï")).toBe(7116);
  });

  it("lands 10,000 sequential subjects within ±1 point of a 90/10 split", () => {
    const counts = { a: 0, b: 0 };
    for (const v of split(
      initialRanges([
        { name: "a", weight: 9000 },
        { name: "b", weight: 1000 },
      ]),
    )) {
      counts[v as "a" | "b"]++;
    }
    expect(Math.abs(counts.b / 10_000 - 0.1)).toBeLessThan(0.01);
  });
});

describe("bucket ranges", () => {
  const start = initialRanges([
    { name: "a", weight: 5000 },
    { name: "b", weight: 3000 },
    { name: "c", weight: 2000 },
  ]);

  it("raising a weight moves subjects only into that variant, and only out of the ones that fell", () => {
    const before = split(start);
    const next = rebalance(
      start,
      new Map([
        ["a", 4000],
        ["b", 3000],
        ["c", 3000],
      ]),
    );
    expect(rangeProblems(next)).toEqual([]);
    const after = split(next);
    const moves = new Map<string, number>();
    for (let i = 0; i < subjects.length; i++) {
      if (before[i] !== after[i])
        moves.set(`${before[i]}→${after[i]}`, (moves.get(`${before[i]}→${after[i]}`) ?? 0) + 1);
    }
    expect([...moves.keys()]).toEqual(["a→c"]);
    // About a tenth of everyone moves: the 1,000 basis points that changed hands.
    expect(Math.abs((moves.get("a→c") ?? 0) / subjects.length - 0.1)).toBeLessThan(0.01);
  });

  it("survives many random rebalances with exact coverage and sizes", () => {
    let state = start;
    let seed = 7;
    const rand = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let round = 0; round < 200; round++) {
      const x = Math.floor(rand() * 10_001);
      const y = Math.floor(rand() * (10_001 - x));
      const weights = new Map([
        ["a", x],
        ["b", y],
        ["c", 10_000 - x - y],
      ]);
      const next = rebalance(state, weights);
      expect(rangeProblems(next)).toEqual([]);
      // A variant that did not shrink keeps every bucket it had.
      for (const v of next) {
        const old = state.find((o) => o.name === v.name) as RangedVariant;
        if (v.weight >= old.weight) {
          for (const [s, e] of old.ranges)
            for (let b = s; b < e; b += 97) expect(ownerOf(next, b)).toBe(v.name);
        }
      }
      state = next;
    }
  });

  it("refuses weights that do not sum to 10,000", () => {
    expect(() => rebalance(start, new Map([["a", 6000]]))).toThrow(/sum to 10000/);
    expect(rangeProblems([{ name: "a", weight: 10_000, ranges: [[0, 9000]] }])).toEqual([
      "variant a: ranges cover 9000 buckets; weight is 10000",
      "buckets 9000..9999 have no variant",
    ]);
  });
});

describe("assign", () => {
  const config = (cut: boolean): RouteConfig => ({
    control: "a",
    subject: "user",
    salt: "s1",
    guardrails: null,
    description: null,
    variants: [
      ...initialRanges([
        { name: "a", weight: 5000 },
        { name: "b", weight: 5000 },
      ]).map((v) => ({
        ...v,
        target: `t-${v.name}`,
        shadow: false,
        cut: cut && v.name === "b" ? { reason: "error rate", at: "now" } : null,
      })),
      { name: "shadow", target: "t-s", weight: 2500, shadow: true, ranges: [], cut: null },
    ],
  });

  it("is a pure function: same subject, same variant, same shadows", () => {
    for (const s of subjects.slice(0, 200))
      expect(assign("bot", config(false), s)).toEqual(assign("bot", config(false), s));
  });

  it("sends a cut variant's subjects to control and says where they came from", () => {
    const results = subjects
      .slice(0, 500)
      .map((s) => [assign("bot", config(false), s), assign("bot", config(true), s)] as const);
    for (const [open, cut] of results) {
      expect(cut.variant.name).toBe("a");
      expect(cut.cutFrom).toBe(open.variant.name === "b" ? "b" : null);
    }
  });

  it("mirrors about the shadow's share, independently of the split", () => {
    const shadowed = subjects.map((s) => assign("bot", config(false), s));
    const share = shadowed.filter((a) => a.shadows.length === 1).length / subjects.length;
    expect(Math.abs(share - 0.25)).toBeLessThan(0.015);
    const inB = shadowed.filter((a) => a.variant.name === "b");
    expect(Math.abs(inB.filter((a) => a.shadows.length === 1).length / inB.length - 0.25)).toBeLessThan(0.03);
  });
});
