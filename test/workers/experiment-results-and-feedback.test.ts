import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import type { Results } from "../../src/contracts/experiments.ts";
import { call, json, newTenant } from "./support/edge.ts";
import { answerAs, createRoute, exposures, type Fixture, infer, twoVersions } from "./support/experiment.ts";

let f: Fixture;

beforeEach(async () => {
  f = await twoVersions();
  answerAs(f);
});

const fiftyFifty = {
  name: "bot",
  salt: "s1",
  variants: [
    { name: "control", target: "support@1", weight: 5000 },
    { name: "treatment", target: "support@2", weight: 5000 },
  ],
};

async function results(key: string, route = "bot"): Promise<Results> {
  return await json<Results>(await call("GET", `/admin/routes/${route}/results`, { token: key }), 200);
}

/** Writes a synthetic exposure log straight into D1: `counts` exposures per variant under the route's version. */
async function log(tenant: string, route: string, counts: Record<string, number>): Promise<void> {
  const row = await env.DB.prepare("SELECT id, version FROM routes WHERE tenant = ? AND name = ?")
    .bind(tenant, route)
    .first<{ id: string; version: number }>();
  if (row === null) throw new Error(`route ${route} is missing`);
  const statements = Object.entries(counts).flatMap(([variant, n]) =>
    Array.from({ length: n }, (_, i) =>
      env.DB.prepare(
        `INSERT INTO exposures (tenant, request_id, route_id, route_version, variant, shadow, adapter, subject_hash,
           status, error, latency_ms, prompt_tokens, completion_tokens, created_at)
         VALUES (?, ?, ?, ?, ?, 0, NULL, NULL, 200, 0, ?, 1, 1, '2026-01-01T00:00:00Z')`,
      ).bind(tenant, `${route}-${variant}-${i}`, row.id, row.version, variant, 10 + (i % 100)),
    ),
  );
  for (let i = 0; i < statements.length; i += 500) await env.DB.batch(statements.slice(i, i + 500));
}

describe("results", () => {
  it("detects sample-ratio mismatch on a biased log and not on a fair one", async () => {
    await createRoute(f.key, fiftyFifty);
    await log(f.tenant, "bot", { control: 2530, treatment: 2470 });
    const fair = await results(f.key);
    expect(fair.srm?.n).toBe(5000);
    expect(fair.srm?.alarm).toBe(false);
    expect(fair.srm?.pValue).toBeGreaterThan(0.3);

    await createRoute(f.key, { ...fiftyFifty, name: "bot2" });
    await log(f.tenant, "bot2", { control: 2600, treatment: 2400 });
    const biased = await results(f.key, "bot2");
    expect(biased.srm?.chiSquare).toBeCloseTo(8, 6);
    // p ≈ 0.005: suspicious, but above the 0.001 alarm line GrowthBook and Statsig use.
    expect(biased.srm?.alarm).toBe(false);
    await createRoute(f.key, { ...fiftyFifty, name: "bot3" });
    await log(f.tenant, "bot3", { control: 2700, treatment: 2300 });
    const skewed = await results(f.key, "bot3");
    expect(skewed.srm?.chiSquare).toBeCloseTo(32, 6);
    expect(skewed.srm?.pValue).toBeLessThan(0.001);
    expect(skewed.srm?.alarm).toBe(true);
  });

  it("reports n, errors, latency percentiles and tokens per variant", async () => {
    await createRoute(f.key, fiftyFifty);
    await log(f.tenant, "bot", { control: 200, treatment: 100 });
    const r = await results(f.key);
    const control = r.variants.find((v) => v.variant === "control");
    expect(control).toMatchObject({
      n: 200,
      errors: 0,
      errorRate: 0,
      tokens: { prompt: 200, completion: 200 },
    });
    // Latencies 10..109 twice over: nearest-rank p50 is 59, p95 is 104.
    expect(control?.latencyMs).toEqual({ p50: 59, p95: 104 });
  });

  it("records feedback for the tenant's own requests and summarises it with intervals", async () => {
    await createRoute(f.key, fiftyFifty);
    const ids: Record<string, string[]> = { control: [], treatment: [] };
    for (let i = 0; i < 40; i++) {
      const r = await infer(f.key, "bot", { user: `fb-${i}` });
      ids[r.variant as string]?.push(r.res.headers.get("x-request-id") as string);
    }
    for (const id of ids.control ?? []) {
      await json(
        await call("POST", "/v1/feedback", { token: f.key, json: { request_id: id, score: 0.25 } }),
        200,
      );
    }
    for (const [i, id] of (ids.treatment ?? []).entries()) {
      const body = { request_id: id, score: i % 2 === 0 ? 1 : 0.5, label: i % 2 === 0 ? "great" : "ok" };
      await json(await call("POST", "/v1/feedback", { token: f.key, json: body }), 200);
    }
    const r = await results(f.key);
    const control = r.variants.find((v) => v.variant === "control");
    const treatment = r.variants.find((v) => v.variant === "treatment");
    expect(control?.feedback.n).toBe(ids.control?.length);
    expect(control?.feedback.mean).toBeCloseTo(0.25, 12);
    expect(control?.feedback.ci95?.[0]).toBeCloseTo(0.25, 12);
    expect(treatment?.feedback.mean).toBeGreaterThan(0.7);
    expect(treatment?.feedback.labels.great).toBe(Math.ceil((ids.treatment?.length ?? 0) / 2));
    expect(treatment?.diffToControl?.mean).toBeCloseTo((treatment?.feedback.mean ?? 0) - 0.25, 12);
    expect(treatment?.diffToControl?.ci95[0]).toBeGreaterThan(0.3);
    expect(control?.diffToControl).toBeNull();
  });

  it("refuses feedback on another tenant's request, and on unknown ids", async () => {
    await createRoute(f.key, fiftyFifty);
    const r = await infer(f.key, "bot", { user: "someone" });
    const id = r.res.headers.get("x-request-id") as string;
    expect((await exposures(f.tenant)).map((e) => e.request_id)).toEqual([id]);
    const other = await newTenant();
    const refused = await call("POST", "/v1/feedback", {
      token: other.key,
      json: { request_id: id, score: 1 },
    });
    const body = await json<{ error: { code: string; param: string } }>(refused, 404);
    expect(body.error).toMatchObject({ code: "not_found", param: "request_id" });
    const count = await env.DB.prepare("SELECT COUNT(*) AS n FROM feedback WHERE request_id = ?")
      .bind(id)
      .first<{ n: number }>();
    expect(count?.n).toBe(0);
    const bad = await call("POST", "/v1/feedback", { token: f.key, json: { request_id: id, score: 1.5 } });
    expect((await json<{ error: { message: string } }>(bad, 400)).error.message).toMatch(/score.*1\.5/);
    const neither = await call("POST", "/v1/feedback", { token: f.key, json: { request_id: id } });
    expect(neither.status).toBe(400);
  });

  it("hides routes and results from other tenants", async () => {
    await createRoute(f.key, fiftyFifty);
    const other = await newTenant();
    expect((await call("GET", "/admin/routes/bot/results", { token: other.key })).status).toBe(404);
    expect((await infer(other.key, "bot")).status).toBe(404);
  });
});
