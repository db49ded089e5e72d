import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import type { Route } from "../../src/contracts/experiments.ts";
import { call, json, runner } from "./support/edge.ts";
import { answerAs, createRoute, exposures, type Fixture, infer, twoVersions } from "./support/experiment.ts";

let f: Fixture;

beforeEach(async () => {
  f = await twoVersions();
  answerAs(f);
});

const split = {
  name: "bot",
  salt: "s1",
  variants: [
    { name: "control", target: "support@prod", weight: 9000 },
    { name: "treatment", target: "support@2", weight: 1000 },
  ],
};

async function aliasAt(alias: string): Promise<number | undefined> {
  const adapter = await json<{ aliases: Record<string, number> }>(
    await call("GET", "/admin/adapters/support", { token: f.key }),
    200,
  );
  return adapter.aliases[alias];
}

describe("promotion", () => {
  it("moves the alias to the variant's version and concludes the route in one audited step", async () => {
    await createRoute(f.key, split);
    const res = await call("POST", "/admin/routes/bot/promote", {
      token: f.key,
      json: { variant: "treatment", alias: "prod" },
    });
    const promoted = await json<{ route: Route; version: number; previous: number }>(res, 200);
    expect(promoted).toMatchObject({ version: 2, previous: 1 });
    expect(promoted.route).toMatchObject({ status: "concluded", winner: "treatment", version: 2 });
    expect(await aliasAt("prod")).toBe(2);
    // A concluded route serves its winner to everyone and records nothing more.
    const before = (await exposures(f.tenant)).length;
    for (const user of ["alice", "bob", "user-0"]) {
      const r = await infer(f.key, "bot", { user });
      expect([r.variant, r.res.headers.get("x-adapter")]).toEqual(["treatment", "support@2"]);
    }
    expect((await exposures(f.tenant)).length).toBe(before);
    const trail = await json<{ data: { action: string; target: string }[] }>(
      await call("GET", "/admin/audit", { token: f.key }),
      200,
    );
    expect(trail.data.slice(0, 2).map((e) => `${e.action} ${e.target}`)).toEqual([
      "route_promote bot",
      "alias_move support@prod",
    ]);
  });

  it("changes nothing when the alias moved meanwhile (compare-and-set), nor when the route is already concluded", async () => {
    await createRoute(f.key, split);
    const lost = await call("POST", "/admin/routes/bot/promote", {
      token: f.key,
      json: { variant: "treatment", alias: "prod", expected: 2 },
    });
    expect((await json<{ error: { message: string } }>(lost, 409)).error.message).toBe(
      "alias support@prod is at version 1; expected version 2",
    );
    expect(await aliasAt("prod")).toBe(1);
    const route = await json<Route>(await call("GET", "/admin/routes/bot", { token: f.key }), 200);
    expect([route.status, route.version, route.winner]).toEqual(["running", 1, null]);
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM batch_assertions").first<{ n: number }>();
    expect(rows?.n).toBe(0);

    await json(await call("POST", "/admin/routes/bot/stop", { token: f.key }), 200);
    const again = await call("POST", "/admin/routes/bot/promote", {
      token: f.key,
      json: { variant: "treatment", alias: "prod" },
    });
    expect(again.status).toBe(409);
    expect(await aliasAt("prod")).toBe(1);
  });

  it("pauses to control without recording, and resumes", async () => {
    await createRoute(f.key, split);
    await json(
      await call("POST", "/admin/routes/bot/status", { token: f.key, json: { status: "paused" } }),
      200,
    );
    // user-0 falls in bucket 9586 of route bot / salt s1: the treatment's share.
    const paused = await infer(f.key, "bot", { user: "user-0" });
    expect(paused.variant).toBe("control");
    expect(await exposures(f.tenant)).toHaveLength(0);
    await json(
      await call("POST", "/admin/routes/bot/status", { token: f.key, json: { status: "running" } }),
      200,
    );
    expect((await infer(f.key, "bot", { user: "user-0" })).variant).toBe("treatment");
    expect(await exposures(f.tenant)).toHaveLength(1);
  });
});

describe("shadow variants", () => {
  it("get a copy of the request, are recorded, and are never returned", async () => {
    await createRoute(f.key, {
      name: "bot",
      variants: [
        { name: "live", target: "support@1", weight: 10_000 },
        { name: "candidate", target: "support@2", weight: 10_000, shadow: true },
      ],
    });
    const r = await infer(f.key, "bot", { user: "alice" });
    expect(r.variant).toBe("live");
    expect(JSON.parse(r.text).choices[0].message.content).toBe("from support@1");
    const sent = await Promise.all(
      runner.calls.map(async (c) => ((await c.clone().json()) as { model: string }).model),
    );
    expect(sent.map((m) => f.labels.get(m)).sort()).toEqual(["support@1", "support@2"]);
    const rows = await exposures(f.tenant);
    expect(rows.map((e) => [e.variant, e.shadow, e.adapter, e.completion_tokens]).sort()).toEqual([
      ["candidate", 1, "support@2", 5],
      ["live", 0, "support@1", 5],
    ]);
    expect(new Set(rows.map((e) => e.request_id)).size).toBe(1);
  });
});

describe("compare", () => {
  it("answers one prompt from several versions side by side, failures included", async () => {
    const res = await call("POST", "/admin/compare", {
      token: f.key,
      json: {
        models: ["support@1", "support@2", "support@9"],
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 8,
      },
    });
    const body = await json<{
      results: {
        model: string;
        adapter: string | null;
        status: number;
        text: string | null;
        error: string | null;
      }[];
    }>(res, 200);
    expect(body.results.map((r) => [r.model, r.adapter, r.status, r.text])).toEqual([
      ["support@1", "support@1", 200, "from support@1"],
      ["support@2", "support@2", 200, "from support@2"],
      ["support@9", null, 404, null],
    ]);
    expect(body.results[2]?.error).toContain("support@9");
    expect(runner.calls).toHaveLength(2);
    const bad = await call("POST", "/admin/compare", { token: f.key, json: { models: ["support@1"] } });
    expect(bad.status).toBe(400);
  });
});
