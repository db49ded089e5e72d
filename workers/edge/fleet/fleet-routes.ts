// Fleet membership over HTTP. A runner joins, heartbeats and leaves with a fleet key (scope `runner`, made by
// the operator); the operator lists the pool and drains a member. Every write here forgets the isolate's
// members cache, so this isolate routes by it at once; others within MEMBERS_CACHE_MS.
import type { Context } from "hono";
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { z } from "zod";
import {
  type DrainResponse,
  HeartbeatRequestSchema,
  type HeartbeatResponse,
  JoinRequestSchema,
  type JoinResponse,
  MemberIdSchema,
  type PoolEntry,
} from "../../../src/contracts/fleet.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import type { EdgeEnv } from "../env.ts";
import { operatorOnly, tenantWith } from "../http/auth.ts";
import { BaseModelStore } from "../registry/base-model-store.ts";
import { heartbeatMs, leaseMs } from "./fleet.ts";
import { type Member, MemberStore } from "./member-store.ts";
import { forgetMembers } from "./members-cache.ts";
import { warmOnJoin } from "./warm.ts";

const IdParam = z.strictObject({ id: MemberIdSchema });

const iso = (ms: number) => new Date(ms).toISOString();

/** The fleet key's id; the operator's token is not a runner. */
function fleetKey(c: Context<EdgeEnv>): string {
  tenantWith(c, "runner");
  const principal = c.get("principal");
  if (principal.kind !== "key") throw new AppError("forbidden", "a runner joins with a fleet key");
  return principal.keyId;
}

/** Hono throws on `executionCtx` where the runtime gives none (tests calling app.fetch without one). */
/** Scope before body: a caller without a fleet key learns nothing from how its body would parse. */
const runnerOnly = createMiddleware<EdgeEnv>(async (c, next) => {
  fleetKey(c);
  await next();
});

function background(c: Context<EdgeEnv>, work: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    void work;
  }
}

function entryOf(m: Member, index: number): PoolEntry {
  return {
    source: "member",
    id: m.id,
    index,
    url: m.url,
    kind: m.kind,
    baseModel: m.baseModel,
    capacity: m.capacity,
    maxLoraRank: m.maxLoraRank,
    targetModules: m.targetModules,
    slots: m.slots,
    context: m.context,
    version: m.version,
    joinedAt: iso(m.joinedAt),
    heartbeatAt: iso(m.heartbeatAt),
    leaseUntil: iso(m.leaseUntil),
    drainingAt: m.drainingAt === null ? null : iso(m.drainingAt),
    inFlight: m.inFlight,
    resident: m.resident,
  };
}

/** Static entries first (positions 1..n, as the pool names them), then members by join time. */
export async function poolEntries(c: Context<EdgeEnv>): Promise<PoolEntry[]> {
  const pool = c.get("deps").runner(c.env);
  const members = await new MemberStore(c.env.DB).current(Date.now());
  const memberUrls = new Set(members.map((m) => m.url));
  const statics = pool.runners.filter((r) => r.memberId === undefined && !memberUrls.has(r.url));
  const out: PoolEntry[] = statics.map((r, i) => ({
    source: "static",
    id: null,
    index: i + 1,
    url: r.url,
    kind: null,
    baseModel: r.baseModel ?? null,
    capacity: r.weight,
    maxLoraRank: null,
    targetModules: null,
    slots: null,
    context: null,
    version: null,
    joinedAt: null,
    heartbeatAt: null,
    leaseUntil: null,
    drainingAt: null,
    inFlight: null,
    resident: [],
  }));
  members.forEach((m, i) => {
    out.push(entryOf(m, statics.length + i + 1));
  });
  return out;
}

export const fleetRoutes = new Hono<EdgeEnv>()
  .post("/runners", runnerOnly, validate("json", JoinRequestSchema), async (c) => {
    const keyId = fleetKey(c);
    const request = c.req.valid("json");
    const base = await new BaseModelStore(c.env.DB).get(request.baseModel);
    // A member whose weights differ from the registered base would serve adapters validated against another
    // shape; one for a base not registered yet is kept (requests for it start once it is registered).
    if (
      base !== null &&
      request.baseModelFingerprint !== null &&
      request.baseModelFingerprint !== base.spec.fingerprint
    ) {
      throw new AppError(
        "conflict",
        `body.baseModelFingerprint: must match the registered base ${JSON.stringify(request.baseModel)} ` +
          `(${base.spec.fingerprint}); got ${JSON.stringify(request.baseModelFingerprint)}`,
        { param: "baseModelFingerprint" },
      );
    }
    const lease = leaseMs(c.env);
    const store = new MemberStore(c.env.DB);
    const now = Date.now();
    const member = await store.join(request, keyId, now, lease);
    forgetMembers();
    const others = await store.current(now);
    background(
      c,
      warmOnJoin(c.env, c.get("deps").runner(c.env), member, others).catch((error: unknown) => {
        console.error(`warm on join of ${member.id}:`, error);
      }),
    );
    const body: JoinResponse = {
      id: member.id,
      leaseMs: lease,
      heartbeatMs: heartbeatMs(lease),
      leaseUntil: iso(member.leaseUntil),
    };
    return c.json(body, 201);
  })
  .put(
    "/runners/:id/heartbeat",
    runnerOnly,
    validate("param", IdParam),
    validate("json", HeartbeatRequestSchema),
    async (c) => {
      const keyId = fleetKey(c);
      const { id } = c.req.valid("param");
      const beat = c.req.valid("json");
      const member = await new MemberStore(c.env.DB).heartbeat(id, beat, Date.now(), leaseMs(c.env), keyId);
      if (beat.draining) forgetMembers();
      const body: HeartbeatResponse = {
        leaseUntil: iso(member.leaseUntil),
        drain: member.drainingAt !== null,
      };
      return c.json(body);
    },
  )
  .delete("/runners/:id", validate("param", IdParam), async (c) => {
    const principal = c.get("principal");
    const keyId = principal.kind === "operator" ? null : fleetKey(c);
    const member = await new MemberStore(c.env.DB).leave(c.req.valid("param").id, keyId, Date.now());
    forgetMembers();
    return c.json({ id: member.id, left: true });
  })
  .get("/runners", operatorOnly, async (c) => {
    // the operator's look drops (and audits) lapsed members even when no member is left to heartbeat
    await new MemberStore(c.env.DB).dropLapsed(Date.now());
    return c.json({ object: "list", data: await poolEntries(c) });
  })
  .post("/runners/:id/drain", operatorOnly, validate("param", IdParam), async (c) => {
    const member = await new MemberStore(c.env.DB).drain(c.req.valid("param").id, Date.now());
    forgetMembers();
    const body: DrainResponse = { id: member.id, drainingAt: iso(member.drainingAt ?? Date.now()) };
    return c.json(body, 202);
  });
