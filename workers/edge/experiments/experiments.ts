// Route administration: create, re-weight, pause/resume, stop and promote. Every change is a compare-and-set
// on the route's version, audited in the same D1 batch, and forgets this isolate's cached copy.
import type {
  CreateRouteRequest,
  RouteConfig,
  RouteStatus,
  Variant,
} from "../../../src/contracts/experiments.ts";
import { AppError } from "../../../src/errors.ts";
import { initialRanges, rebalance } from "../../../src/experiments/ranges.ts";
import { resolveModel } from "../inference/infer.ts";
import { BaseModelStore } from "../registry/base-model-store.ts";
import { RegistryStore } from "../registry/registry-store.ts";
import type { ExperimentStore, StoredRoute } from "./experiment-store.ts";
import { forgetRoute } from "./experiments-cache.ts";

export interface Actor {
  env: Env;
  store: ExperimentStore;
  tenant: string;
  actor: string;
}

/** A route name must not hide a base model or one of the tenant's adapters. */
async function checkNameFree(a: Actor, name: string): Promise<void> {
  if ((await new BaseModelStore(a.env.DB).get(name)) !== null) {
    throw new AppError("conflict", `route name ${name} is a base model id; pick another`, { param: "name" });
  }
  if ((await new RegistryStore(a.env.DB).adapters(a.tenant, name)).length > 0) {
    throw new AppError("conflict", `route name ${name} is an adapter of tenant ${a.tenant}; pick another`, {
      param: "name",
    });
  }
}

/** Every target must resolve now; they resolve again per request, since an alias target may move. */
async function checkTargets(a: Actor, variants: CreateRouteRequest["variants"]): Promise<void> {
  const problems: string[] = [];
  await Promise.all(
    variants.map(async (v, i) => {
      try {
        await resolveModel(a.env, a.tenant, v.target);
      } catch (error) {
        if (!(error instanceof AppError) || error.status >= 500) throw error;
        problems.push(`variants[${i}].target: ${error.message}`);
      }
    }),
  );
  if (problems.length > 0) {
    throw new AppError("invalid_request", problems[0] as string, { param: "variants", details: problems });
  }
}

function randomSalt(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

export async function createRoute(a: Actor, request: CreateRouteRequest): Promise<StoredRoute> {
  await checkNameFree(a, request.name);
  await checkTargets(a, request.variants);
  const live = request.variants.filter((v) => !v.shadow);
  const ranges = new Map(initialRanges(live).map((r) => [r.name, r.ranges]));
  const config: RouteConfig = {
    control: request.control ?? (live[0]?.name as string),
    subject: request.subject,
    salt: request.salt ?? randomSalt(),
    guardrails: request.guardrails ?? null,
    description: request.description ?? null,
    variants: request.variants.map((v) => ({ ...v, ranges: ranges.get(v.name) ?? [], cut: null })),
  };
  const route = await a.store.create(a.tenant, request.name, config, a.actor);
  forgetRoute(a.tenant, request.name);
  return route;
}

function checkVersion(route: StoredRoute, expected: number | undefined): void {
  if (expected !== undefined && expected !== route.version) {
    throw new AppError(
      "conflict",
      `route ${route.name} is at version ${route.version}; expected ${expected}`,
      {
        param: "expectedVersion",
      },
    );
  }
}

function checkOpen(route: StoredRoute): void {
  if (route.status === "concluded") {
    throw new AppError(
      "conflict",
      `route ${route.name} is concluded; create a new route to experiment again`,
    );
  }
}

async function change(
  a: Actor,
  route: StoredRoute,
  next: Parameters<ExperimentStore["update"]>[1],
  details: Record<string, unknown>,
) {
  const updated = await a.store.update(route, next, {
    tenant: a.tenant,
    actor: a.actor,
    action: "route_update",
    target: route.name,
    details,
  });
  forgetRoute(a.tenant, route.name);
  return updated;
}

/** New weights for some variants (the rest keep theirs); live weights must still sum to 10,000. */
export function reweigh(config: RouteConfig, weights: Record<string, number>): RouteConfig {
  const unknown = Object.keys(weights).filter((n) => !config.variants.some((v) => v.name === n));
  if (unknown.length > 0) {
    throw new AppError(
      "invalid_request",
      `weights: no variant named ${unknown.map((n) => JSON.stringify(n)).join(", ")}; variants are ${config.variants.map((v) => v.name).join(", ")}`,
      { param: "weights" },
    );
  }
  const weightOf = (v: Variant) => weights[v.name] ?? v.weight;
  const live = config.variants.filter((v) => !v.shadow);
  const sum = live.reduce((n, v) => n + weightOf(v), 0);
  if (sum !== 10_000) {
    throw new AppError(
      "invalid_request",
      `weights: live weights must sum to 10000 basis points; got ${live.map((v) => `${v.name}=${weightOf(v)}`).join(" + ")} = ${sum}`,
      { param: "weights" },
    );
  }
  const ranged = new Map(
    rebalance(live, new Map(live.map((v) => [v.name, weightOf(v)]))).map((r) => [r.name, r]),
  );
  return {
    ...config,
    variants: config.variants.map((v) => ({
      ...v,
      weight: weightOf(v),
      ranges: ranged.get(v.name)?.ranges ?? [],
    })),
  };
}

export async function setWeights(
  a: Actor,
  route: StoredRoute,
  weights: Record<string, number>,
  expected?: number,
) {
  checkVersion(route, expected);
  checkOpen(route);
  return await change(a, route, { config: reweigh(route.config, weights) }, { weights });
}

export async function setStatus(
  a: Actor,
  route: StoredRoute,
  status: Exclude<RouteStatus, "concluded">,
  expected?: number,
) {
  checkVersion(route, expected);
  checkOpen(route);
  return await change(a, route, { status }, { status });
}

/** Concludes without a winner: the route keeps answering, from control, and records nothing more. */
export async function stopRoute(a: Actor, route: StoredRoute) {
  checkOpen(route);
  return await change(a, route, { status: "concluded", winner: null }, { status: "concluded" });
}
