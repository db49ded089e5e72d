// The pure part of routing: pool configuration, and which runner serves which adapter.
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/errors.ts";
import { parsePoolConfig } from "../../workers/edge/pool/pool-config.ts";
import { type Candidate, DEFAULT_LOAD_BOUND, rank } from "../../workers/edge/pool/rendezvous.ts";

const runner = (url: string, extra: Partial<Candidate> = {}): Candidate => ({
  url,
  weight: 1,
  inFlight: 0,
  healthy: true,
  resident: false,
  ...extra,
});
const pool = ["http://a:1", "http://b:1", "http://c:1"].map((u) => runner(u));
const keys = Array.from({ length: 600 }, (_, i) => `adapter-${i}`);
const first = (candidates: Candidate[], key: string) => rank(candidates, key)[0]?.url;

function refusal(env: Parameters<typeof parsePoolConfig>[0]): string {
  try {
    parsePoolConfig(env);
  } catch (error) {
    if (error instanceof AppError) return error.message;
  }
  throw new Error("expected a refusal");
}

describe("pool configuration", () => {
  it("reads RUNNER_URL lists and RUNNERS JSON with per-runner tokens and weights", () => {
    expect(parsePoolConfig({ RUNNER_URL: "http://a:1/, http://b:2", RUNNER_TOKEN: "t" }).runners).toEqual([
      { url: "http://a:1", token: "t", weight: 1 },
      { url: "http://b:2", token: "t", weight: 1 },
    ]);
    const json = JSON.stringify([
      { url: "https://a.example" },
      { url: "https://b.example", token: "own", weight: 3 },
    ]);
    const config = parsePoolConfig({ RUNNERS: json, RUNNER_URL: "http://ignored:1", RUNNER_TOKEN: "shared" });
    expect(config.runners).toEqual([
      { url: "https://a.example", token: "shared", weight: 1 },
      { url: "https://b.example", token: "own", weight: 3 },
    ]);
    expect(config.timeoutMs).toBe(120_000);
  });

  it("refuses mistakes naming the variable, the entry and the rule, never echoing a token", () => {
    expect(refusal({ RUNNERS: "[{", RUNNER_TOKEN: "t" })).toContain("RUNNERS: must be a JSON array");
    expect(refusal({ RUNNERS: '[{"url":"ftp://x"}]', RUNNER_TOKEN: "t" })).toBe(
      "RUNNERS[0].url: must be an http(s) URL",
    );
    expect(refusal({ RUNNERS: '[{"url":"http://x","weight":0}]', RUNNER_TOKEN: "t" })).toBe(
      "RUNNERS[0].weight: must be > 0",
    );
    expect(refusal({ RUNNERS: '[{"url":"http://x"}]' })).toContain("RUNNERS[0].token: is required");
    expect(refusal({ RUNNER_URL: "http://a:1,http://a:1", RUNNER_TOKEN: "t" })).toContain("twice");
    expect(refusal({ RUNNER_URL: "http://a:1", RUNNER_TOKEN: "t", RUNNER_TIMEOUT_MS: "soon" })).toContain(
      'RUNNER_TIMEOUT_MS: must be an integer in 1..3600000; got "soon"',
    );
    const secret = refusal({ RUNNERS: '[{"url":"nope","token":"s3cret"}]' });
    expect(secret).not.toContain("s3cret");
  });
});

describe("rendezvous choice", () => {
  it("is stable per adapter and spreads adapters over runners", () => {
    const counts = new Map<string, number>();
    for (const key of keys) {
      expect(first(pool, key)).toBe(first([...pool].reverse(), key));
      counts.set(first(pool, key) as string, (counts.get(first(pool, key) as string) ?? 0) + 1);
    }
    for (const r of pool) expect(counts.get(r.url)).toBeGreaterThan(150);
  });

  it("moves only the adapters of a removed runner", () => {
    const smaller = pool.filter((r) => r.url !== "http://b:1");
    for (const key of keys) {
      if (first(pool, key) !== "http://b:1") expect(first(smaller, key)).toBe(first(pool, key));
    }
  });

  it("gives a runner of weight 3 about three times the adapters", () => {
    const weighted = [runner("http://a:1", { weight: 3 }), runner("http://b:1")];
    const onA = keys.filter((k) => first(weighted, k) === "http://a:1").length;
    expect(onA / keys.length).toBeGreaterThan(0.68);
    expect(onA / keys.length).toBeLessThan(0.82);
  });

  it("prefers a runner that holds the adapter, then falls back in rendezvous order", () => {
    const key = "adapter-7";
    const top = first(pool, key);
    const other = pool.find((r) => r.url !== top) as Candidate;
    const withResident = pool.map((r) => (r === other ? { ...r, resident: true } : r));
    const order = rank(withResident, key).map((r) => r.url);
    expect(order[0]).toBe(other.url);
    expect(order[1]).toBe(top);
    expect(order).toHaveLength(3);
  });

  it("tries runners that failed lately last, and still tries them when all failed", () => {
    const key = "adapter-9";
    const top = first(pool, key);
    const down = pool.map((r) => (r.url === top ? { ...r, healthy: false } : r));
    expect(rank(down, key).at(-1)?.url).toBe(top);
    const allDown = pool.map((r) => ({ ...r, healthy: false }));
    expect(rank(allDown, key)).toHaveLength(3);
  });

  it("keeps a hot adapter on its runner up to the floor, then spills it to the next", () => {
    const key = "adapter-3";
    const order = rank(pool, key).map((r) => r.url);
    const busy = (n: number) => pool.map((r) => (r.url === order[0] ? { ...r, inFlight: n } : r));
    expect(first(busy(DEFAULT_LOAD_BOUND.floor - 1), key)).toBe(order[0]);
    expect(first(busy(DEFAULT_LOAD_BOUND.floor), key)).toBe(order[1]);
  });
});
