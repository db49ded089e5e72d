// Pool changes leave an audit trail: in workerd with real local D1, a member's join, its own drain (SIGTERM),
// the operator's drain, a departure and a lapsed lease each write one entry under the fleet key's tenant, in
// the same batch as the change, naming who did it and the member by id (never its URL); draining twice is
// audited once, and a refused join writes nothing. Only the outbound calls to members are intercepted.
import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { MemberStore } from "../../workers/edge/fleet/member-store.ts";
import { forgetMembers } from "../../workers/edge/fleet/members-cache.ts";
import { ADMIN, demoBase, json, newTenant } from "./support/edge.ts";
import { call, join, makeFleetKey, member } from "./support/fleet.ts";

interface Entry {
  actor: string;
  action: string;
  target: string;
  details: Record<string, unknown>;
}

let spec: BaseModelSpec;
let ops: { tenant: string; key: string };
let fleet: { key: string; id: string };

beforeAll(async () => {
  spec = await demoBase();
  ops = await newTenant(["admin"]);
  fleet = await makeFleetKey(ops.tenant);
});

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM runner_members").run();
  await env.DB.prepare("DELETE FROM audit_log WHERE action LIKE 'runner_%'").run();
  forgetMembers();
});

/** The ops tenant's fleet entries, oldest first, read as its admin reads them. */
async function trail(): Promise<Entry[]> {
  const { data } = await json<{ data: Entry[] }>(await call("GET", "/admin/audit?limit=100", ops.key), 200);
  return data.filter((e) => e.action.startsWith("runner_")).reverse();
}

const beat = (draining: boolean) => ({ draining, inFlight: 0, queueDepth: 0, resident: [] });

describe("audit of pool changes", () => {
  it("records joins, drains (the member's and the operator's, once each) and departures", async () => {
    const a = await join(member(spec, "http://audit-a:1"), fleet.key);
    const b = await join(member(spec, "http://audit-b:1", { capacity: 2 }), fleet.key);
    for (let i = 0; i < 2; i++) {
      const res = await call("PUT", `/admin/runners/${a.id}/heartbeat`, fleet.key, beat(true));
      expect(res.status).toBe(200);
    }
    expect((await call("POST", `/admin/runners/${b.id}/drain`, ADMIN)).status).toBe(202);
    expect((await call("POST", `/admin/runners/${b.id}/drain`, ADMIN)).status).toBe(202);
    expect((await call("DELETE", `/admin/runners/${a.id}`, fleet.key)).status).toBe(200);
    expect((await call("DELETE", `/admin/runners/${b.id}`, ADMIN)).status).toBe(200);
    const entries = await trail();
    const key = `key:${fleet.id}`;
    expect(entries.map((e) => [e.action, e.actor, e.target])).toEqual([
      ["runner_join", key, a.id],
      ["runner_join", key, b.id],
      ["runner_drain", key, a.id],
      ["runner_drain", "operator", b.id],
      ["runner_leave", key, a.id],
      ["runner_leave", "operator", b.id],
    ]);
    expect(entries[1]?.details).toMatchObject({ kind: "runner", baseModel: "demo-llama", capacity: 2 });
    expect(entries[2]?.details.drainingAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(entries[3]?.details.drainingAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(JSON.stringify(entries)).not.toContain("audit-a");
    // another tenant's admin sees none of it
    const other = await newTenant(["admin"]);
    const theirs = await json<{ data: Entry[] }>(await call("GET", "/admin/audit?limit=100", other.key), 200);
    expect(theirs.data.filter((e) => e.action.startsWith("runner_"))).toEqual([]);
  });

  it("records a lapsed member when the operator looks, with its last heartbeat and lease", async () => {
    const store = new MemberStore(env.DB);
    const lapsedAt = Date.now() - 60_000;
    const old = await store.join(member(spec, "http://audit-lapsed:1"), fleet.id, lapsedAt, 15_000);
    expect((await call("GET", "/admin/runners", ADMIN)).status).toBe(200);
    const entries = await trail();
    expect(entries.map((e) => [e.action, e.actor, e.target])).toEqual([
      ["runner_join", `key:${fleet.id}`, old.id],
      ["runner_lapse", "edge", old.id],
    ]);
    expect(entries[1]?.details.leaseUntil).toBe(new Date(lapsedAt + 15_000).toISOString());
    expect(entries[1]?.details.heartbeatAt).toBe(new Date(lapsedAt).toISOString());
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM runner_members").first<{ n: number }>();
    expect(row?.n).toBe(0);
    // looking again finds nothing more to record
    await call("GET", "/admin/runners", ADMIN);
    expect(await trail()).toHaveLength(2);
  });

  it("writes nothing for a refused join", async () => {
    const wrong = await call(
      "POST",
      "/admin/runners",
      fleet.key,
      member(spec, "http://audit-wrong:1", { baseModelFingerprint: "not-the-base" }),
    );
    expect(wrong.status).toBe(409);
    const bad = await call("POST", "/admin/runners", fleet.key, { ...member(spec, "http://x:1"), gpu: 1 });
    expect(bad.status).toBe(400);
    expect(await trail()).toEqual([]);
  });
});
