// Guardrails: a variant whose error rate or p95 latency breaches its route's limit, after the minimum
// sample, is cut: its buckets go to control from then on, and the route's config says why. Judged after
// exposures are written, never on the hot path, and only when a batch holds an exposure that could breach
// (an error, or a latency above the limit): healthy traffic costs no extra query.
import type { Guardrails, RouteConfig } from "../../../src/contracts/experiments.ts";
import { nearestRankIndex } from "../../../src/experiments/stats.ts";
import { nowIso } from "../common/d1.ts";
import { ExperimentStore, type Exposure, type StoredRoute } from "./experiment-store.ts";
import { forgetRoute } from "./experiments-cache.ts";

function suspicious(e: Exposure, g: Guardrails): boolean {
  return (
    (g.maxErrorRate !== undefined && e.error) ||
    (g.maxP95LatencyMs !== undefined && e.latencyMs > g.maxP95LatencyMs)
  );
}

/** Why each variant breaches, keyed by variant; control is never cut (its share has nowhere to go). */
async function breaches(
  store: ExperimentStore,
  route: StoredRoute,
  g: Guardrails,
): Promise<Map<string, string>> {
  const candidates = route.config.variants.filter((v) => v.cut === null && v.name !== route.config.control);
  const stats = (await store.variantStats(route.id, route.version)).filter(
    (s) => s.n >= g.minSamples && candidates.some((v) => v.name === s.variant),
  );
  const found = new Map<string, string>();
  for (const s of stats) {
    const rate = s.errors / s.n;
    if (g.maxErrorRate !== undefined && rate > g.maxErrorRate) {
      found.set(
        s.variant,
        `error rate ${rate.toFixed(4)} > maxErrorRate ${g.maxErrorRate} after ${s.n} requests`,
      );
    }
  }
  if (g.maxP95LatencyMs !== undefined) {
    const rest = stats.filter((s) => !found.has(s.variant));
    const p95 = await store.latencyAt(
      route.id,
      rest.map((s) => ({ variant: s.variant, rank: nearestRankIndex(s.n, 0.95) })),
    );
    rest.forEach((s, i) => {
      const value = p95[i];
      if (value != null && value > (g.maxP95LatencyMs as number)) {
        found.set(
          s.variant,
          `p95 latency ${value} ms > maxP95LatencyMs ${g.maxP95LatencyMs} after ${s.n} requests`,
        );
      }
    });
  }
  return found;
}

function withCuts(config: RouteConfig, found: Map<string, string>): RouteConfig {
  const at = nowIso();
  return {
    ...config,
    variants: config.variants.map((v) => {
      const reason = found.get(v.name);
      return reason === undefined ? v : { ...v, cut: { reason, at } };
    }),
  };
}

async function judge(store: ExperimentStore, tenant: string, name: string): Promise<void> {
  const route = await store.find(tenant, name);
  const g = route?.config.guardrails;
  if (route == null || g == null || route.status !== "running") return;
  const found = await breaches(store, route, g);
  if (found.size === 0) return;
  try {
    await store.update(
      route,
      { config: withCuts(route.config, found) },
      {
        tenant,
        actor: "guardrail",
        action: "route_guardrail",
        target: name,
        details: Object.fromEntries(found),
      },
    );
  } catch (error) {
    // Someone changed the route meanwhile; the next suspicious batch judges the new version.
    console.warn(`guardrails: route ${name} not cut:`, (error as Error).message);
  }
  forgetRoute(tenant, name);
}

/** An exposure with what triage needs from the route it was served under. */
export interface PendingExposure {
  exposure: Exposure;
  route: string;
  guardrails: Guardrails | null;
}

export async function evaluateGuardrails(db: D1Database, batch: readonly PendingExposure[]): Promise<void> {
  const store = new ExperimentStore(db);
  const routes = new Map<string, { tenant: string; name: string }>();
  for (const p of batch) {
    if (p.guardrails !== null && suspicious(p.exposure, p.guardrails)) {
      routes.set(p.exposure.routeId, { tenant: p.exposure.tenant, name: p.route });
    }
  }
  for (const { tenant, name } of routes.values()) await judge(store, tenant, name);
}
