import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { beforeEach, describe, expect, it } from "vitest";
import { createConsole } from "../../workers/edge/console/app.tsx";
import type { EdgeEnv } from "../../workers/edge/env.ts";
import { requestId } from "../../workers/edge/http/request-id.ts";
import { createRunnerClient } from "../../workers/edge/pool/runner-client.ts";
import { adapterFiles, call, demoBase, json, newTenant, publish } from "./support/edge.ts";
import { answerAs, createRoute, type Fixture, twoVersions } from "./support/experiment.ts";
import { type Browser, page, signedIn, submit, textOf } from "./support/console.ts";

let mine: Fixture;
let b: Browser;
let theirs: { key: string; adapterId: string };

beforeEach(async () => {
  mine = await twoVersions();
  answerAs(mine);
  b = await signedIn(mine.key);
  const spec = await demoBase();
  const other = await newTenant(["admin", "infer"]);
  const published = await publish(other.key, "secret-bot", adapterFiles(spec, { seed: 9 }), {
    alias: "prod",
  });
  await createRoute(other.key, {
    name: "their-route",
    variants: [{ name: "only", target: "secret-bot@prod", weight: 10000 }],
  });
  theirs = { key: other.key, adapterId: published.adapterId };
});

describe("every console view is scoped to the session's tenant", () => {
  it("lists and shows only the tenant's adapters and routes; another tenant's read as not found", async () => {
    const adapters = textOf((await page(b, "/console/adapters")).html);
    expect(adapters).toContain("support");
    expect(adapters).not.toContain("secret-bot");
    const theirAdapter = await call("GET", "/console/adapters/secret-bot", {
      headers: { cookie: [...b.cookies].map(([k, v]) => `${k}=${v}`).join("; ") },
    });
    expect(theirAdapter.status).toBe(404);
    expect(textOf(await theirAdapter.text())).toContain(
      `adapter secret-bot does not exist for tenant ${mine.tenant}`,
    );
    expect(textOf((await page(b, "/console/experiments")).html)).not.toContain("their-route");
    const { csrf } = await page(b, "/console/compare");
    expect((await page(b, "/console/compare")).html).not.toContain("secret-bot");

    const yank = await submit(b, "/console/adapters/secret-bot/versions/1/yank", { csrf });
    expect(yank.status).toBe(404);
    const promote = await submit(b, "/console/experiments/their-route/promote", {
      csrf,
      routeVersion: "1",
      variant: "only",
      alias: "prod",
    });
    expect(promote.status).toBe(404);
    const theirView = await json<{ versions: { yankedAt: string | null }[] }>(
      await call("GET", "/admin/adapters/secret-bot", { token: theirs.key }),
      200,
    );
    expect(theirView.versions[0]?.yankedAt).toBeNull();
    const route = await json<{ status: string }>(
      await call("GET", "/admin/routes/their-route", { token: theirs.key }),
      200,
    );
    expect(route.status).toBe("running");
  });

  it("cannot compare against another tenant's adapter", async () => {
    const { csrf } = await page(b, "/console/compare");
    const res = await submit(b, "/console/compare", {
      csrf,
      prompt: "hi",
      models: ["support@1", "secret-bot@1"],
    });
    const text = textOf(await res.text());
    expect(res.status).toBe(200);
    expect(text).toContain("from support@1");
    expect(text).toContain(`HTTP 404: adapter secret-bot@1 does not exist for tenant ${mine.tenant}`);
  });

  it("shows which runner holds the tenant's adapters, and only counts other tenants'", async () => {
    const [v1, v2] = [...mine.labels.keys()] as [string, string];
    const resident = (adapterId: string, slot: number) => ({
      adapterId,
      name: "support@1",
      slot,
      rank: 8,
      modules: 4,
      sizeBytes: 4096,
      pinned: false,
      loadedAt: "2026-01-01T00:00:00.000Z",
      lastUsedAt: "2026-01-01T00:01:00.000Z",
      inFlight: 0,
    });
    const seen: string[] = [];
    const runnerFetch = async (url: string, init: RequestInit) => {
      seen.push(`${url} ${new Headers(init.headers).get("authorization")}`);
      if (url.startsWith("http://r2.test")) throw new Error("connection refused");
      const path = new URL(url).pathname;
      if (path === "/health") {
        return Response.json({
          status: "ok",
          model: "demo-llama",
          baseModelFingerprint: null,
          device: "cpu",
          backend: "native",
          maxSlots: 4,
          maxRank: 64,
          residentAdapters: 2,
          queueDepth: 3,
          uptimeS: 100,
          version: "0.1.0",
        });
      }
      if (path === "/v1/adapters") {
        return Response.json({
          object: "list",
          maxSlots: 4,
          maxRank: 64,
          data: [resident(v1, 1), resident(theirs.adapterId, 2), resident(v2, 3)],
        });
      }
      return new Response(
        [
          "# TYPE runner_requests_total counter",
          `runner_requests_total{adapter_id="${v1}"} 3`,
          `runner_requests_total{adapter_id="${theirs.adapterId}"} 9`,
          'runner_requests_total{adapter_id="base"} 2',
          `runner_prompt_tokens_total{adapter_id="${v1}"} 41`,
          `runner_prompt_tokens_total{adapter_id="${theirs.adapterId}"} 77`,
          "# TYPE runner_generated_tokens_total counter",
          `runner_generated_tokens_total{adapter_id="${v1}"} 150`,
          `runner_generated_tokens_total{adapter_id="${theirs.adapterId}"} 50`,
          "# TYPE runner_adapter_info gauge",
          `runner_adapter_info{adapter_id="${v1}",name="",label="support@1"} 1`,
          `runner_adapter_info{adapter_id="${theirs.adapterId}",name="",label="secret-bot@1"} 1`,
          `runner_adapter_info{adapter_id="${v2}",name="",label="support@2"} 1`,
          "runner_adapter_loads_total 7",
          "runner_adapter_evictions_total 2",
          "runner_running_sequences 1",
        ].join("\n"),
      );
    };
    const app = new Hono<EdgeEnv>();
    app.use("*", requestId);
    app.use("*", async (c, next) => {
      c.set("deps", {
        runner: () => createRunnerClient({ baseUrl: "http://r1.test,http://r2.test", token: "tok", fetch }),
      });
      await next();
    });
    app.route("/console", createConsole({ fetch: runnerFetch }));
    const ctx = createExecutionContext();
    const res = await app.fetch(
      new Request("http://edge.test/console/runners", {
        headers: { cookie: [...b.cookies].map(([k, v]) => `${k}=${v}`).join("; ") },
      }),
      env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    const html = await res.text();
    expect(res.status, html).toBe(200);
    const text = textOf(html);
    expect(text).toContain(
      "Runner 1 ok, model demo-llama on cpu (native), up 100 s Queue depth 3 Running sequences 1 Tokens/s (mean since start) 2.00 Requests 14 Adapter loads 7 Adapter evictions 2",
    );
    // Slot, rank, size, pinned, in flight, then requests, prompt and generated tokens matched by content id.
    expect(text).toMatch(/support@1 1 8 4\.0 KiB no 0 3 41 150 2026-01-01 00:00:00 UTC/);
    expect(text).toMatch(/support@2 3 8 4\.0 KiB no 0 0 0 0 2026-01-01 00:00:00 UTC/);
    expect(text).not.toMatch(/\b(77|50)\b/);
    expect(html).not.toContain(theirs.adapterId);
    expect(text).toContain("1 slot(s) held by other adapters; 4 slots in all.");
    expect(text).not.toContain("secret-bot");
    expect(text).toContain("Runner 2 did not answer.");
    // Runners are named by position; their URLs stay out of the page.
    expect(html).not.toContain("r1.test");
    expect(seen).toContain("http://r1.test/health Bearer tok");
  });
});
