// A route that starts is about to get traffic: in workerd with real local D1 and R2, creating a route (and
// resuming a paused one) pushes each variant's version, shadows included, to the member rendezvous hashing
// picks for it, each content once, in the background; a base-model variant needs no push, a paused route and
// a refused creation push nothing. Only the outbound calls to the members are intercepted.
import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { forgetMembers } from "../../workers/edge/fleet/members-cache.ts";
import { BASE, demoBase, json, newTenant } from "./support/edge.ts";
import { call, join, makeFleetKey, member, ownerOf, publishVersion, pushes, seen } from "./support/fleet.ts";

const URLS = ["http://r1:1", "http://r2:1", "http://r3:1"];
let spec: BaseModelSpec;
let tenant: { tenant: string; key: string };
let fleetKey: string;

beforeAll(async () => {
  spec = await demoBase();
  tenant = await newTenant(["admin", "infer"]);
  const ops = await newTenant(["admin"]);
  fleetKey = (await makeFleetKey(ops.tenant)).key;
});

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM runner_members").run();
  forgetMembers();
  for (const url of URLS) await join(member(spec, url), fleetKey);
  seen.length = 0;
});

async function published(name: string, seed: number): Promise<{ adapterId: string; version: number }> {
  return await json(await publishVersion(spec, tenant.key, name, { r: 4, seed }), 201);
}

const expected = (...ids: string[]) => ids.map((id) => `${ownerOf(URLS, id)}/v1/adapters/${id}`).sort();

describe("warm on route start", () => {
  it("pushes every variant's version to its rendezvous member when the route is created", async () => {
    const one = await published("triage", 11);
    const two = await published("triage", 12);
    const shadow = await published("triage-next", 13);
    expect(pushes()).toEqual([]);
    const res = await call("POST", "/admin/routes", tenant.key, {
      name: "triage-route",
      variants: [
        { name: "control", target: `triage@${one.version}`, weight: 4000 },
        { name: "canary", target: `triage@${two.version}`, weight: 4000 },
        // same content as control under another name: pushed once
        { name: "again", target: "triage@1", weight: 1000 },
        { name: "plain", target: BASE, weight: 1000 },
        { name: "next", target: "triage-next", weight: 500, shadow: true },
      ],
    });
    expect(res.status, await res.clone().text()).toBe(201);
    expect(pushes().sort()).toEqual(expected(one.adapterId, two.adapterId, shadow.adapterId));
  });

  it("pushes again when a paused route resumes, and nothing when it pauses or creation is refused", async () => {
    const v = await published("resume", 21);
    const created = await call("POST", "/admin/routes", tenant.key, {
      name: "resume-route",
      variants: [
        { name: "control", target: BASE, weight: 5000 },
        { name: "tuned", target: `resume@${v.version}`, weight: 5000 },
      ],
    });
    expect(created.status).toBe(201);
    expect(pushes()).toEqual(expected(v.adapterId));
    seen.length = 0;
    const paused = await call("POST", "/admin/routes/resume-route/status", tenant.key, { status: "paused" });
    expect(paused.status).toBe(200);
    expect(pushes()).toEqual([]);
    const resumed = await call("POST", "/admin/routes/resume-route/status", tenant.key, {
      status: "running",
    });
    expect(resumed.status).toBe(200);
    expect(pushes()).toEqual(expected(v.adapterId));
    seen.length = 0;
    const refused = await call("POST", "/admin/routes", tenant.key, {
      name: "resume-route",
      variants: [{ name: "only", target: `resume@${v.version}`, weight: 10000 }],
    });
    expect(refused.status).toBe(409);
    expect(seen).toEqual([]);
  });
});
