// Promotion: move an adapter alias to the winning variant's version and conclude the route, in one D1 batch.
// Both writes are compare-and-set (the route on its version, the alias on its current version); an assertion
// after each makes the batch, a transaction, roll back unless both changed exactly one row.
import { AppError } from "../../../src/errors.ts";
import { audit } from "../common/audit.ts";
import { nowIso } from "../common/d1.ts";
import { announce } from "../common/invalidation.ts";
import { resolveModel } from "../inference/infer.ts";
import { RegistryStore } from "../registry/registry-store.ts";
import { type AliasMove, moveStatement } from "../registry/release-store.ts";
import type { StoredRoute } from "./experiment-store.ts";
import type { Actor } from "./experiments.ts";
import { forgetRoute } from "./experiments-cache.ts";

export interface Promotion {
  variant: string;
  alias: string;
  expected?: number | null | undefined;
}

const ASSERT_ONE_CHANGE = "INSERT INTO batch_assertions (changed) VALUES (changes())";

function isAssertion(error: unknown): boolean {
  return error instanceof Error && /CHECK constraint failed/i.test(error.message);
}

export async function promote(a: Actor, route: StoredRoute, p: Promotion) {
  if (route.status === "concluded") {
    throw new AppError("conflict", `route ${route.name} is already concluded`);
  }
  const variant = route.config.variants.find((v) => v.name === p.variant);
  if (variant === undefined) {
    throw new AppError(
      "invalid_request",
      `variant: route ${route.name} has no variant ${JSON.stringify(p.variant)}`,
      {
        param: "variant",
      },
    );
  }
  const target = await resolveModel(a.env, a.tenant, variant.target);
  if (target.kind !== "adapter") {
    throw new AppError(
      "invalid_request",
      `variant: ${variant.name} serves base model ${target.id}; no alias to move`,
      {
        param: "variant",
      },
    );
  }
  const { name, version } = target.row;
  const registry = new RegistryStore(a.env.DB);
  const adapterId = await registry.adapterId(a.tenant, name);
  const current = (await registry.adapters(a.tenant, name))[0]?.aliases[p.alias] ?? null;
  const move: AliasMove = {
    tenant: a.tenant,
    name,
    alias: p.alias,
    version,
    expected: p.expected === undefined ? current : p.expected,
    actor: a.actor,
  };
  const db = a.env.DB;
  const details = { variant: variant.name, adapter: `${name}@${version}`, alias: p.alias, previous: current };
  try {
    await db.batch([
      a.store.updateStatement(route, { status: "concluded", winner: variant.name }),
      db.prepare(ASSERT_ONE_CHANGE),
      moveStatement(db, adapterId, move, nowIso()),
      db.prepare(ASSERT_ONE_CHANGE),
      audit(db, {
        tenant: a.tenant,
        actor: a.actor,
        action: "alias_move",
        target: `${name}@${p.alias}`,
        details: { version, expected: move.expected, reason: `promote ${route.name}` },
      }),
      audit(db, { tenant: a.tenant, actor: a.actor, action: "route_promote", target: route.name, details }),
      db.prepare("DELETE FROM batch_assertions"),
    ]);
  } catch (error) {
    if (!isAssertion(error)) throw error;
    const now = await a.store.find(a.tenant, route.name);
    if (now?.version !== route.version) throw await a.store.conflict(route);
    const at = (await registry.adapters(a.tenant, name))[0]?.aliases[p.alias] ?? null;
    // The alias write also fails when its target is yanked (a yank won the race): the alias can be exactly
    // where the caller expected, so the compare-and-set message below would contradict itself.
    if ((await registry.version(a.tenant, name, version)).yanked_at !== null) {
      throw new AppError(
        "conflict",
        `variant: ${variant.name} serves ${name}@${version}, which was yanked while it was being promoted; an alias cannot point at a yanked version, so ${name}@${p.alias} stays ${at === null ? "unset" : `at version ${at}`} and route ${route.name} keeps running`,
        { param: "variant" },
      );
    }
    throw new AppError(
      "conflict",
      `alias ${name}@${p.alias} ${at === null ? "does not exist" : `is at version ${at}`}; expected ${move.expected === null ? "it not to exist" : `version ${move.expected}`}`,
      { param: "expected" },
    );
  } finally {
    forgetRoute(a.tenant, route.name);
    announce({ kind: "adapter", tenant: a.tenant, name });
  }
  return {
    route: await a.store.get(a.tenant, route.name),
    alias: p.alias,
    adapter: name,
    version,
    previous: current,
  };
}
