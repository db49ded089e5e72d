import { beforeEach, describe, expect, it } from "vitest";
import { call, json } from "./support/edge.ts";
import {
  answerAs,
  assignments,
  createRoute,
  exposures,
  type Fixture,
  infer,
  subjects,
  twoVersions,
} from "./support/experiment.ts";

let f: Fixture;

beforeEach(async () => {
  f = await twoVersions();
  answerAs(f);
});

const ninetyTen = (extra: Record<string, unknown> = {}) => ({
  name: "support-bot",
  salt: "s1",
  variants: [
    { name: "control", target: "support@prod", weight: 9000 },
    { name: "treatment", target: "support@2", weight: 1000 },
  ],
  ...extra,
});

describe("a running route splits traffic stickily", () => {
  it("lands 10,000 subjects within ±1 point of 90/10", async () => {
    await createRoute(f.key, ninetyTen());
    const variants = await assignments(f.key, "support-bot", subjects(10_000));
    const share = variants.filter((v) => v === "treatment").length / variants.length;
    expect(Math.abs(share - 0.1)).toBeLessThan(0.01);
  });

  it("gives the documented buckets on this runtime, through the public API, on every call", async () => {
    await createRoute(f.key, ninetyTen());
    // README test vectors (route support-bot, salt s1): alice 2659, bob 6090 → control; user-36 9672,
    // user-58 9011 → treatment. The unit ring checks the same numbers in Node: nothing is stored per
    // subject, so any isolate, any location, any restart computes the same answer.
    const expected = { alice: "control", bob: "control", "user-36": "treatment", "user-58": "treatment" };
    for (const [user, variant] of Object.entries(expected)) {
      for (let i = 0; i < 3; i++) {
        const r = await infer(f.key, "support-bot", { user });
        expect(r.status).toBe(200);
        expect(r.variant).toBe(variant);
        expect(r.res.headers.get("x-experiment")).toBe("support-bot");
        expect(r.res.headers.get("x-adapter")).toBe(variant === "control" ? "support@1" : "support@2");
        expect(JSON.parse(r.text).choices[0].message.content).toBe(`from ${r.res.headers.get("x-adapter")}`);
      }
    }
  });

  it("sticks on the x-ab-key header or the API key when the route says so", async () => {
    await createRoute(f.key, ninetyTen({ name: "by-header", subject: "header" }));
    const [want] = await assignments(f.key, "by-header", ["user-36"]);
    for (let i = 0; i < 3; i++) {
      expect((await infer(f.key, "by-header", { user: "ignored" }, { "x-ab-key": "user-36" })).variant).toBe(
        want,
      );
    }
    await createRoute(f.key, ninetyTen({ name: "by-key", subject: "api_key" }));
    const seen = new Set<string | null>();
    for (let i = 0; i < 5; i++) seen.add((await infer(f.key, "by-key", { user: `u${i}` })).variant);
    expect(seen.size).toBe(1);
  });

  it("moves only the subjects a weight change must move", async () => {
    await createRoute(f.key, ninetyTen());
    const people = subjects(10_000);
    const before = await assignments(f.key, "support-bot", people);
    const res = await call("PUT", "/admin/routes/support-bot/weights", {
      token: f.key,
      json: { weights: { control: 8000, treatment: 2000 }, expectedVersion: 1 },
    });
    expect((await json<{ version: number }>(res, 200)).version).toBe(2);
    const after = await assignments(f.key, "support-bot", people);
    const moves = people.flatMap((_, i) => (before[i] === after[i] ? [] : [`${before[i]}→${after[i]}`]));
    expect(new Set(moves)).toEqual(new Set(["control→treatment"]));
    expect(Math.abs(moves.length / people.length - 0.1)).toBeLessThan(0.01);
    // And the traffic follows: a subject that moved now gets the treatment's adapter.
    const mover = people.find((_, i) => before[i] !== after[i]);
    expect((await infer(f.key, "support-bot", { user: mover })).variant).toBe("treatment");

    const stale = await call("PUT", "/admin/routes/support-bot/weights", {
      token: f.key,
      json: { weights: { control: 5000, treatment: 5000 }, expectedVersion: 1 },
    });
    expect(stale.status).toBe(409);
  });

  it("with three variants, raising one moves subjects only out of the one that fell", async () => {
    // Contiguous ranges recomputed from scratch would shift the middle variant and move its subjects too.
    await createRoute(f.key, {
      name: "three",
      variants: [
        { name: "a", target: "support@1", weight: 5000 },
        { name: "b", target: "support@2", weight: 3000 },
        { name: "c", target: "support@2", weight: 2000 },
      ],
    });
    const people = subjects(10_000);
    const before = await assignments(f.key, "three", people);
    const weights = { weights: { a: 4000, c: 3000 } };
    await json(await call("PUT", "/admin/routes/three/weights", { token: f.key, json: weights }), 200);
    const after = await assignments(f.key, "three", people);
    const moves = people.flatMap((_, i) => (before[i] === after[i] ? [] : [`${before[i]}→${after[i]}`]));
    expect(new Set(moves)).toEqual(new Set(["a→c"]));
    expect(Math.abs(moves.length / people.length - 0.1)).toBeLessThan(0.01);
  });

  it("assigns requests without a subject per request, and records every exposure", async () => {
    await createRoute(
      f.key,
      ninetyTen({
        variants: [
          { name: "a", target: "support@1", weight: 5000 },
          { name: "b", target: "support@2", weight: 5000 },
        ],
      }),
    );
    const seen = { a: 0, b: 0 };
    for (let i = 0; i < 60; i++) seen[(await infer(f.key, "support-bot")).variant as "a" | "b"]++;
    // 60 fair coin flips: each side below 10 has probability ~1e-8.
    expect(seen.a).toBeGreaterThan(10);
    expect(seen.b).toBeGreaterThan(10);
    const rows = await exposures(f.tenant);
    expect(rows).toHaveLength(60);
    for (const row of rows) {
      expect(row.subject_hash).toBeNull();
      expect(row.adapter).toBe(row.variant === "a" ? "support@1" : "support@2");
      expect([row.status, row.error, row.prompt_tokens, row.completion_tokens]).toEqual([200, 0, 3, 5]);
      expect(row.shadow).toBe(0);
    }
  });

  it("leaves plain adapter names alone and refuses bad splits with the field, rule and value", async () => {
    await createRoute(f.key, ninetyTen());
    const plain = await infer(f.key, "support@2", { user: "alice" });
    expect(plain.variant).toBeNull();
    expect(plain.res.headers.get("x-experiment")).toBeNull();

    const bad = await call("POST", "/admin/routes", {
      token: f.key,
      json: {
        name: "bad",
        variants: [
          { name: "a", target: "support@1", weight: 9000 },
          { name: "b", target: "support@2", weight: 500 },
        ],
      },
    });
    const body = await json<{ error: { message: string; param: string } }>(bad, 400);
    expect(body.error.message).toContain(
      "live weights must sum to 10000 basis points; got a=9000 + b=500 = 9500",
    );
    const missing = await call("POST", "/admin/routes", {
      token: f.key,
      json: { name: "bad", variants: [{ name: "a", target: "support@9", weight: 10_000 }] },
    });
    expect((await json<{ error: { message: string } }>(missing, 400)).error.message).toContain(
      "variants[0].target: adapter support@9 does not exist",
    );
    const clash = await call("POST", "/admin/routes", {
      token: f.key,
      json: { name: "support", variants: [{ name: "a", target: "support@1", weight: 10_000 }] },
    });
    expect(clash.status).toBe(409);
  });
});
