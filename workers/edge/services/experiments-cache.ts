// Routes as this isolate last read them. The hot path must not pay a D1 query per request to learn whether
// `model` names a route (most requests name adapters), so hits and misses are both kept briefly. Writes made
// through this isolate forget their entry at once; other isolates see a change within ROUTE_CACHE_MS.
import { isValidName } from "../../../src/contracts/names.ts";
import { ExperimentStore, type StoredRoute } from "../stores/experiment-store.ts";

export const ROUTE_CACHE_MS = 2_000;
const MAX_ENTRIES = 10_000;

const entries = new Map<string, { route: StoredRoute | null; until: number }>();

const keyOf = (tenant: string, name: string) => `${tenant}\u0000${name}`;

/** The tenant's route named `model`, or null when `model` is not a route name (an adapter ref, a base id). */
export async function cachedRoute(
  db: D1Database,
  tenant: string,
  model: string,
): Promise<StoredRoute | null> {
  if (!isValidName(model)) return null;
  const key = keyOf(tenant, model);
  const now = Date.now();
  const hit = entries.get(key);
  if (hit !== undefined && hit.until > now) return hit.route;
  const route = await new ExperimentStore(db).find(tenant, model);
  // A full map is cleared rather than evicted piecemeal: cheap, and entries live two seconds anyway.
  if (entries.size >= MAX_ENTRIES) entries.clear();
  entries.set(key, { route, until: now + ROUTE_CACHE_MS });
  return route;
}

export function forgetRoute(tenant: string, name: string): void {
  entries.delete(keyOf(tenant, name));
}
