import { beforeEach, describe, expect, it } from "vitest";
import type { Results, Route } from "../../src/contracts/experiments.ts";
import { call, json } from "./support/edge.ts";
import { answerAs, createRoute, exposures, type Fixture, infer, twoVersions } from "./support/experiment.ts";

let f: Fixture;

beforeEach(async () => {
  f = await twoVersions();
});

describe("guardrails", () => {
  it("cuts a variant whose error rate breaches after the minimum sample; its share returns to control", async () => {
    answerAs(f, ["support@2"]);
    await createRoute(f.key, {
      name: "bot",
      salt: "s1",
      variants: [
        { name: "control", target: "support@1", weight: 5000 },
        { name: "treatment", target: "support@2", weight: 5000 },
      ],
      guardrails: { maxErrorRate: 0.2, minSamples: 10 },
    });
    const statuses: { variant: string | null; status: number }[] = [];
    for (let i = 0; i < 60; i++) {
      const r = await infer(f.key, "bot", { user: `g-${i}` });
      statuses.push({ variant: r.variant, status: r.status });
    }
    const failed = statuses.filter((s) => s.variant === "treatment");
    // Exactly the minimum sample of treatment requests failed; after that, its subjects got control.
    expect(failed).toHaveLength(10);
    expect(failed.every((s) => s.status === 500)).toBe(true);
    const later = statuses.slice(statuses.lastIndexOf(failed[9] as (typeof statuses)[number]) + 1);
    expect(later.length).toBeGreaterThan(10);
    expect(later.every((s) => s.variant === "control" && s.status === 200)).toBe(true);

    const route = await json<Route>(await call("GET", "/admin/routes/bot", { token: f.key }), 200);
    const cut = route.config.variants.find((v) => v.name === "treatment")?.cut;
    expect(cut?.reason).toBe("error rate 1.0000 > maxErrorRate 0.2 after 10 requests");
    const results = await json<Results>(
      await call("GET", "/admin/routes/bot/results", { token: f.key }),
      200,
    );
    const treatment = results.variants.find((v) => v.variant === "treatment");
    expect(treatment).toMatchObject({
      state: "cut",
      cutReason: cut?.reason,
      n: 10,
      errors: 10,
      errorRate: 1,
    });
    // After the cut, control is expected to take everything: the split served since is not a mismatch.
    expect(results.srm).toBeNull();
    const trail = await json<{ data: { action: string; actor: string; target: string }[] }>(
      await call("GET", "/admin/audit", { token: f.key }),
      200,
    );
    expect(trail.data[0]).toMatchObject({ action: "route_guardrail", actor: "guardrail", target: "bot" });
    expect((await exposures(f.tenant)).filter((e) => e.error === 1)).toHaveLength(10);
  });

  it("leaves a healthy variant alone and never cuts control", async () => {
    answerAs(f, ["support@1"]);
    await createRoute(f.key, {
      name: "bot",
      variants: [
        { name: "control", target: "support@1", weight: 5000 },
        { name: "treatment", target: "support@2", weight: 5000 },
      ],
      guardrails: { maxErrorRate: 0.2, minSamples: 5 },
    });
    for (let i = 0; i < 30; i++) await infer(f.key, "bot", { user: `h-${i}` });
    const route = await json<Route>(await call("GET", "/admin/routes/bot", { token: f.key }), 200);
    expect(route.config.variants.map((v) => v.cut)).toEqual([null, null]);
    expect(route.version).toBe(1);
  });
});
