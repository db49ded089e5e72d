// Runner fleets at the edge, in workerd with real local D1 and R2: fleet keys are the operator's, members join
// and heartbeat with a lease, only members serving a request's base get it, a drained or departed member gets
// no new request, publish refuses an adapter no member serving its base accepts, and versions are pushed to
// their rendezvous runner before the first request. Only the outbound calls to runners are intercepted.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import type { JoinRequest, JoinResponse, PoolEntry } from "../../src/contracts/fleet.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { createApp } from "../../workers/edge/app.ts";
import { createConsole } from "../../workers/edge/console/app.tsx";
import type { EdgeEnv } from "../../workers/edge/env.ts";
import { fleetMembers } from "../../workers/edge/fleet/fleet.ts";
import { MemberStore } from "../../workers/edge/fleet/member-store.ts";
import { forgetMembers } from "../../workers/edge/fleet/members-cache.ts";
import { requestId } from "../../workers/edge/http/request-id.ts";
import { parsePoolConfig } from "../../workers/edge/pool/pool-config.ts";
import { rank } from "../../workers/edge/pool/rendezvous.ts";
import { createRunnerClient } from "../../workers/edge/pool/runner-client.ts";
import { signedIn, textOf } from "./support/console.ts";
import { ADMIN, adapterFiles, BASE, demoBase, type ErrorBody, json, newTenant } from "./support/edge.ts";

interface Seen {
  url: string;
  method: string;
  model?: string;
}
let seen: Seen[] = [];
const posts = () => seen.filter((s) => s.method === "POST");

/** Every member answers like a runner: 200 to inference and to adapter loads. */
async function fakeRunner(request: Request): Promise<Response> {
  const entry: Seen = { url: request.url, method: request.method };
  if (request.method === "POST") entry.model = ((await request.clone().json()) as { model: string }).model;
  if (request.method === "PUT") await request.arrayBuffer();
  seen.push(entry);
  if (request.method === "GET") return new Response("{}", { status: 404 });
  return Response.json({ ok: true }, { status: request.method === "PUT" ? 201 : 200 });
}

const app = createApp({
  runner: (e) =>
    createRunnerClient({
      pool: parsePoolConfig({ RUNNERS: "[]", RUNNER_TOKEN: e.RUNNER_TOKEN }),
      members: fleetMembers(e),
      fetch: async (input, init) => await fakeRunner(new Request(input, init)),
    }),
});

async function call(method: string, path: string, token: string, body?: unknown): Promise<Response> {
  const headers = new Headers({ authorization: `Bearer ${token}` });
  let payload: BodyInit | undefined;
  if (body instanceof Uint8Array) {
    headers.set("content-type", "application/octet-stream");
    headers.set("x-content-sha256", await sha256Hex(body));
    payload = body;
  } else if (body !== undefined) {
    headers.set("content-type", "application/json");
    payload = JSON.stringify(body);
  }
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request(`http://edge.test${path}`, { method, headers, body: payload }),
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

let spec: BaseModelSpec;
let fleetKey: string;
let tenant: { tenant: string; key: string };

function member(url: string, extra: Partial<JoinRequest> = {}): JoinRequest {
  return {
    url,
    kind: "runner",
    baseModel: BASE,
    baseModelFingerprint: spec.fingerprint,
    capacity: 1,
    maxLoraRank: 64,
    targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    slots: 8,
    context: 2048,
    version: "0.1.0",
    ...extra,
  };
}

async function join(request: JoinRequest, key = fleetKey): Promise<JoinResponse> {
  return await json<JoinResponse>(await call("POST", "/admin/runners", key, request), 201);
}

const beat = (draining = false, resident: { adapterId: string; requests: number }[] = []) => ({
  draining,
  inFlight: 0,
  queueDepth: 0,
  resident,
});

const chat = (model: string) => ({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 4 });

async function publishVersion(name: string, options: Record<string, unknown>, extra = {}) {
  const files = await adapterFiles(spec, options);
  const staged = await json<{ upload: string }>(
    await call("POST", "/admin/uploads", tenant.key, files.safetensors),
    201,
  );
  return await call("POST", `/admin/adapters/${name}/versions`, tenant.key, {
    upload: staged.upload,
    base: BASE,
    config: files.config,
    ...extra,
  });
}

beforeAll(async () => {
  spec = await demoBase();
  tenant = await newTenant(["admin", "infer"]);
  const ops = await newTenant(["admin"]);
  const created = await json<{ key: string }>(
    await call("POST", "/admin/keys", ADMIN, { tenant: ops.tenant, name: "fleet", scopes: ["runner"] }),
    201,
  );
  fleetKey = created.key;
});

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM runner_members").run();
  forgetMembers();
  seen = [];
});

describe("fleet keys", () => {
  it("are made by the operator only, alone, and open nothing but membership", async () => {
    const own = await call("POST", "/admin/keys", tenant.key, {
      tenant: tenant.tenant,
      name: "mine",
      scopes: ["runner"],
    });
    expect(own.status).toBe(403);
    expect((await json<ErrorBody>(own, 403)).error.param).toBe("scopes");
    const mixed = await call("POST", "/admin/keys", ADMIN, {
      tenant: tenant.tenant,
      name: "mixed",
      scopes: ["runner", "infer"],
    });
    expect((await json<ErrorBody>(mixed, 400)).error.message).toContain("runner");
    // an admin key implies every scope but this one, and a fleet key serves no inference
    expect((await call("POST", "/admin/runners", tenant.key, member("http://m1:1"))).status).toBe(403);
    expect((await call("POST", "/v1/chat/completions", fleetKey, chat(BASE))).status).toBe(403);
    expect(seen).toEqual([]);
  });
});

describe("membership", () => {
  it("joins with a lease, lists for the operator, and refuses a base of another shape", async () => {
    const joined = await join(member("http://m1:1/"));
    expect(joined.id).toMatch(/^rm_/);
    expect(joined.heartbeatMs * 3).toBeLessThanOrEqual(joined.leaseMs);
    const list = await json<{ data: PoolEntry[] }>(await call("GET", "/admin/runners", ADMIN), 200);
    expect(list.data).toHaveLength(1);
    expect(list.data[0]).toMatchObject({
      source: "member",
      id: joined.id,
      url: "http://m1:1",
      drainingAt: null,
    });
    expect(Date.parse(list.data[0]?.leaseUntil ?? "")).toBeGreaterThan(Date.now());
    expect((await call("GET", "/admin/runners", tenant.key)).status).toBe(403);
    const wrong = await call(
      "POST",
      "/admin/runners",
      fleetKey,
      member("http://m2:1", { baseModelFingerprint: "x" }),
    );
    expect((await json<ErrorBody>(wrong, 409)).error.param).toBe("baseModelFingerprint");
    const bad = await call("POST", "/admin/runners", fleetKey, { ...member("http://m3:1"), gpu: "h200" });
    expect((await json<ErrorBody>(bad, 400)).error.message).toContain("gpu");
  });

  it("sends a base's requests only to members serving that base, and 503 for a base nobody serves", async () => {
    await join(member("http://llama:1"));
    await join(member("http://other:1", { baseModel: "other-base", baseModelFingerprint: null }));
    for (let i = 0; i < 6; i++) {
      const res = await call("POST", "/v1/chat/completions", tenant.key, chat(BASE));
      expect(res.status, await res.text()).toBe(200);
    }
    expect(posts().map((s) => new URL(s.url).host)).toEqual(Array(6).fill("llama:1"));
    await env.DB.prepare("DELETE FROM runner_members WHERE url = 'http://llama:1'").run();
    forgetMembers();
    const none = await call("POST", "/v1/chat/completions", tenant.key, chat(BASE));
    const body = await json<ErrorBody>(none, 503);
    expect(body.error.message).toContain(`no runner serves base model "${BASE}"`);
    expect(body.error.message).not.toContain("other:1");
  });

  it("drains on the operator's word: no new requests, the heartbeat says drain, leaving ends the lease", async () => {
    const a = await join(member("http://a:1"));
    const b = await join(member("http://b:1"));
    const drained = await call("POST", `/admin/runners/${a.id}/drain`, ADMIN);
    expect(drained.status).toBe(202);
    expect((await call("POST", `/admin/runners/${a.id}/drain`, fleetKey)).status).toBe(403);
    for (let i = 0; i < 5; i++) await call("POST", "/v1/chat/completions", tenant.key, chat(BASE));
    expect(new Set(posts().map((s) => new URL(s.url).host))).toEqual(new Set(["b:1"]));
    const hb = await json<{ drain: boolean }>(
      await call("PUT", `/admin/runners/${a.id}/heartbeat`, fleetKey, beat()),
      200,
    );
    expect(hb.drain).toBe(true);
    const other = await json<{ drain: boolean }>(
      await call("PUT", `/admin/runners/${b.id}/heartbeat`, fleetKey, beat()),
      200,
    );
    expect(other.drain).toBe(false);
    expect((await call("DELETE", `/admin/runners/${a.id}`, fleetKey)).status).toBe(200);
    const after = await call("PUT", `/admin/runners/${a.id}/heartbeat`, fleetKey, beat());
    expect((await json<ErrorBody>(after, 404)).error.message).toContain("join again");
    const list = await json<{ data: PoolEntry[] }>(await call("GET", "/admin/runners", ADMIN), 200);
    expect(list.data.map((e) => e.id)).toEqual([b.id]);
  });

  it("a member draining itself (SIGTERM) stops getting requests at once", async () => {
    const a = await join(member("http://self:1"));
    await join(member("http://stay:1"));
    await call("PUT", `/admin/runners/${a.id}/heartbeat`, fleetKey, beat(true));
    for (let i = 0; i < 5; i++) await call("POST", "/v1/chat/completions", tenant.key, chat(BASE));
    expect(new Set(posts().map((s) => new URL(s.url).host))).toEqual(new Set(["stay:1"]));
  });

  it("drops a member whose lease lapsed, and a lapsed member must join again", async () => {
    const store = new MemberStore(env.DB);
    const old = await store.join(member("http://lapsed:1"), "k", Date.now() - 60_000, 15_000);
    forgetMembers();
    expect(await store.current(Date.now())).toEqual([]);
    const res = await call("PUT", `/admin/runners/${old.id}/heartbeat`, fleetKey, beat());
    expect(res.status).toBe(404);
    const none = await call("POST", "/v1/chat/completions", tenant.key, chat(BASE));
    expect(none.status).toBe(503);
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM runner_members").first<{ n: number }>();
    expect(row?.n).toBe(0);
  });
});

describe("limits agreement at publish", () => {
  it("refuses with 409 a rank no member serving the base accepts, and writes nothing", async () => {
    await join(member("http://narrow:1", { maxLoraRank: 4 }));
    await join(
      member("http://elsewhere:1", { baseModel: "other-base", baseModelFingerprint: null, maxLoraRank: 256 }),
    );
    const res = await publishVersion("wide", { r: 8 });
    const body = await json<ErrorBody>(res, 409);
    expect(body.error.param).toBe("config.r");
    expect(body.error.message).toContain("max_lora_rank");
    expect(body.error.message).toContain("got 8");
    const listed = await call("GET", "/admin/adapters/wide", tenant.key);
    expect(listed.status).toBe(404);
    await join(member("http://roomy:1", { maxLoraRank: 16 }));
    expect((await publishVersion("wide", { r: 8 })).status).toBe(201);
  });

  it("refuses target modules no member with room for the rank accepts", async () => {
    await join(member("http://qonly:1", { targetModules: ["q_proj"] }));
    const res = await publishVersion("mlp", { r: 4, targets: ["q_proj", "down_proj"] });
    const body = await json<ErrorBody>(res, 409);
    expect(body.error.param).toBe("config.target_modules");
    expect(body.error.message).toContain("down_proj");
    expect((await publishVersion("mlp", { r: 4, targets: ["q_proj"] })).status).toBe(201);
  });
});

describe("warm before the first request", () => {
  it("pushes a version published under an alias, and an alias move, to its rendezvous runner", async () => {
    const urls = ["http://w1:1", "http://w2:1", "http://w3:1"];
    for (const u of urls) await join(member(u));
    const res = await publishVersion("warmed", { r: 4, seed: 5 }, { alias: "prod" });
    const published = await json<{ adapterId: string }>(res, 201);
    const candidates = urls.map((url, i) => ({
      url,
      weight: 1,
      inFlight: 0,
      healthy: true,
      resident: false,
      i,
    }));
    const owner = rank(candidates, published.adapterId)[0]?.url;
    const puts = seen.filter((s) => s.method === "PUT");
    expect(puts.map((s) => `${new URL(s.url).origin}${new URL(s.url).pathname}`)).toEqual([
      `${owner}/v1/adapters/${published.adapterId}`,
    ]);
    seen = [];
    const second = await json<{ adapterId: string; version: number }>(
      await publishVersion("warmed", { r: 4, seed: 6 }),
      201,
    );
    expect(seen.filter((s) => s.method === "PUT")).toEqual([]);
    const moved = await call("PUT", "/admin/adapters/warmed/aliases/prod", tenant.key, {
      version: second.version,
      expected: 1,
    });
    expect(moved.status, await moved.text()).toBe(200);
    expect(seen.filter((s) => s.method === "PUT").map((s) => new URL(s.url).pathname)).toEqual([
      `/v1/adapters/${second.adapterId}`,
    ]);
  });

  it("pushes a joining member the most used adapters of its share", async () => {
    const first = await join(member("http://busy:1"));
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const p = await json<{ adapterId: string }>(
        await publishVersion(`share${i}`, { r: 4, seed: 40 + i }),
        201,
      );
      ids.push(p.adapterId);
    }
    const resident = ids.map((adapterId, i) => ({ adapterId, requests: 10 + i }));
    await call("PUT", `/admin/runners/${first.id}/heartbeat`, fleetKey, beat(false, resident));
    seen = [];
    await join(member("http://fresh:1"));
    const candidates = ["http://busy:1", "http://fresh:1"].map((url) => ({
      url,
      weight: 1,
      inFlight: 0,
      healthy: true,
      resident: false,
    }));
    const mine = ids.filter((id) => rank(candidates, id)[0]?.url === "http://fresh:1");
    expect(mine.length).toBeGreaterThan(0);
    const pushed = seen.filter((s) => s.method === "PUT");
    expect(pushed.every((s) => new URL(s.url).host === "fresh:1")).toBe(true);
    expect(new Set(pushed.map((s) => new URL(s.url).pathname.split("/").at(-1)))).toEqual(new Set(mine));
  });
});

describe("the console's runners page", () => {
  it("shows members with their leases, draining, and the tenant's adapters resident on them", async () => {
    const published = await json<{ adapterId: string }>(
      await publishVersion("shown", { r: 4, seed: 77 }),
      201,
    );
    const a = await join(member("http://shown-a:1"));
    await join(member("http://shown-b:1"));
    await call("POST", `/admin/runners/${a.id}/drain`, ADMIN);
    const b = await signedIn(tenant.key);
    const now = new Date().toISOString();
    const runnerFetch = async (url: string) => {
      const { host, pathname } = new URL(url);
      if (pathname === "/health")
        return Response.json({
          status: "ok",
          model: BASE,
          device: "cpu",
          backend: "native",
          queueDepth: 0,
          uptimeS: 5,
        });
      if (pathname === "/metrics") return new Response("runner_requests_total 1\n");
      const data =
        host === "shown-a:1"
          ? [
              {
                adapterId: published.adapterId,
                name: null,
                slot: 1,
                rank: 4,
                modules: 2,
                sizeBytes: 10,
                pinned: false,
                loadedAt: now,
                lastUsedAt: now,
                inFlight: 0,
              },
            ]
          : [];
      return Response.json({ object: "list", maxSlots: 8, maxRank: 64, data });
    };
    const consoleApp = new Hono<EdgeEnv>();
    consoleApp.use("*", requestId);
    consoleApp.use("*", async (c, next) => {
      c.set("deps", {
        runner: (e) =>
          createRunnerClient({
            pool: parsePoolConfig({ RUNNERS: "[]", RUNNER_TOKEN: e.RUNNER_TOKEN }),
            members: fleetMembers(e),
            fetch: async (input, init) => await fakeRunner(new Request(input, init)),
          }),
      });
      await next();
    });
    consoleApp.route("/console", createConsole({ fetch: runnerFetch }));
    const ctx = createExecutionContext();
    const res = await consoleApp.fetch(
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
    expect(text).toContain(`Member ${a.id} (runner)`);
    expect(text).toMatch(/Runner 1 .*Your adapters on runner 1 .*shown@1 .*Draining since/);
    expect(text).toContain("Lease until");
    expect(text).not.toContain("shown-a:1");
  });
});
