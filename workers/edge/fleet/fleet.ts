// The fleet as the pool sees it: the lease the edge grants and the members that take requests. Members are
// read through the isolate's cache (members-cache.ts); a draining member, or one whose lease lapsed since the
// cache read it, takes no new requests.
import { AppError } from "../../../src/errors.ts";
import type { RunnerEndpoint } from "../pool/pool-config.ts";
import { MemberStore } from "./member-store.ts";
import { cachedMembers } from "./members-cache.ts";

export interface FleetEnv {
  DB: D1Database;
  RUNNER_TOKEN?: string;
  /** How long a heartbeat keeps a member in the pool (ms, default 15000). */
  FLEET_LEASE_MS?: string;
}

export const DEFAULT_LEASE_MS = 15_000;

export function leaseMs(env: FleetEnv): number {
  const raw = env.FLEET_LEASE_MS;
  if (raw === undefined || raw.trim() === "") return DEFAULT_LEASE_MS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1_000 || n > 600_000) {
    throw new AppError(
      "internal_error",
      `FLEET_LEASE_MS: must be an integer in 1000..600000; got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/** A third of the lease: a member survives one lost heartbeat. */
export const heartbeatMs = (lease: number) => Math.floor(lease / 3);

export function currentMembers(env: FleetEnv, now: () => number = Date.now) {
  return cachedMembers(() => new MemberStore(env.DB).current(now()));
}

/** The pool's view of the members: live, not draining, with the secret the edge sends every runner. */
export function fleetMembers(
  env: FleetEnv,
  now: () => number = Date.now,
): () => Promise<readonly RunnerEndpoint[]> {
  return async () => {
    const t = now();
    const members = await currentMembers(env, now);
    return members
      .filter((m) => m.drainingAt === null && m.leaseUntil > t)
      .map((m) => ({
        url: m.url,
        token: env.RUNNER_TOKEN ?? "",
        weight: m.capacity,
        baseModel: m.baseModel,
        memberId: m.id,
      }));
  };
}
