// Routes as this isolate last read them. The hot path must not pay a D1 query per request to learn whether
// `model` names a route (most requests name adapters), so hits and misses are both kept briefly. Writes made
// through this isolate forget their entry at once; other isolates see a change within ROUTE_CACHE_MS.
import { isValidName } from "../../../src/contracts/names.ts";
import { TtlLru } from "../common/ttl-lru.ts";
import { ExperimentStore, type StoredRoute } from "./experiment-store.ts";

export const ROUTE_CACHE_MS = 2_000;

/** `null` is cached too (most names are no route), so it is wrapped: TtlLru never keeps a bare null. */
const entries = new TtlLru<{ route: StoredRoute | null }>({ maxEntries: 10_000, ttlMs: ROUTE_CACHE_MS });

const keyOf = (tenant: string, name: string) => `${tenant}\u0000${name}`;

/** The tenant's route named `model`, or null when `model` is not a route name (an adapter ref, a base id). */
export async function cachedRoute(
  db: D1Database,
  tenant: string,
  model: string,
): Promise<StoredRoute | null> {
  if (!isValidName(model)) return null;
  const found = await entries.getOrLoad(keyOf(tenant, model), async () => ({
    route: await new ExperimentStore(db).find(tenant, model),
  }));
  return found?.route ?? null;
}

export function forgetRoute(tenant: string, name: string): void {
  entries.delete(keyOf(tenant, name));
}
