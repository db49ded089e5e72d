// The one TTL-LRU behind the edge's per-isolate caches: expiry, eviction order, shared loads, and the two
// rules the hot path relies on: misses are not kept, and a load overtaken by a delete is not kept.
import { describe, expect, it } from "vitest";
import { TtlLru } from "../../workers/edge/common/ttl-lru.ts";

function clock() {
  const c = { t: 1_000, now: () => c.t };
  return c;
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("TtlLru", () => {
  it("serves an entry until its TTL has passed", () => {
    const c = clock();
    const cache = new TtlLru<string>({ maxEntries: 4, ttlMs: 100, now: c.now });
    cache.set("a", "A");
    c.t += 99;
    expect(cache.get("a")).toBe("A");
    c.t += 1;
    expect(cache.get("a")).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("evicts the least recently used entry when full", () => {
    const cache = new TtlLru<number>({ maxEntries: 2, ttlMs: Number.POSITIVE_INFINITY });
    cache.set("a", 1);
    cache.set("b", 2);
    expect(cache.get("a")).toBe(1);
    cache.set("c", 3);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBe(1);
    expect(cache.get("c")).toBe(3);
    expect(cache.size).toBe(2);
  });

  it("shares one load between concurrent misses and keeps its value", async () => {
    const cache = new TtlLru<string>({ maxEntries: 4, ttlMs: 100 });
    let loads = 0;
    const gate = deferred<string>();
    const load = () => {
      loads++;
      return gate.promise;
    };
    const both = Promise.all([cache.getOrLoad("k", load), cache.getOrLoad("k", load)]);
    gate.resolve("v");
    expect(await both).toEqual(["v", "v"]);
    expect(await cache.getOrLoad("k", load)).toBe("v");
    expect(loads).toBe(1);
  });

  it("keeps neither a null nor a failed load", async () => {
    const cache = new TtlLru<string>({ maxEntries: 4, ttlMs: 100 });
    expect(await cache.getOrLoad("k", async () => null)).toBeNull();
    await expect(cache.getOrLoad("k", async () => Promise.reject(new Error("not found")))).rejects.toThrow(
      "not found",
    );
    expect(await cache.getOrLoad("k", async () => "found")).toBe("found");
  });

  it("drops a load that a delete overtook, so a write is never undone by an older read", async () => {
    const cache = new TtlLru<string>({ maxEntries: 4, ttlMs: 100 });
    const stale = deferred<string>();
    const reading = cache.getOrLoad("alias", () => stale.promise);
    cache.delete("alias");
    stale.resolve("old");
    expect(await reading).toBe("old");
    expect(await cache.getOrLoad("alias", async () => "new")).toBe("new");
  });

  it("deletes a family of keys at once", () => {
    const cache = new TtlLru<number>({ maxEntries: 8, ttlMs: 100 });
    for (const key of ["t\u0000faq", "t\u0000faq@1", "t\u0000faq@prod", "t\u0000faqs", "u\u0000faq"])
      cache.set(key, 1);
    cache.deleteWhere((key) => key === "t\u0000faq" || key.startsWith("t\u0000faq@"));
    expect(
      ["t\u0000faq", "t\u0000faq@1", "t\u0000faq@prod", "t\u0000faqs", "u\u0000faq"].map((k) => cache.get(k)),
    ).toEqual([undefined, undefined, undefined, 1, 1]);
  });

  it("refuses options that would make it unbounded or useless", () => {
    expect(() => new TtlLru({ maxEntries: 0, ttlMs: 1 })).toThrow(
      "maxEntries must be an integer >= 1; got 0",
    );
    expect(() => new TtlLru({ maxEntries: 1, ttlMs: 0 })).toThrow("ttlMs must be > 0; got 0");
  });
});
