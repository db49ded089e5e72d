// What `model` resolves to, as this isolate last read it: the base models and each tenant's adapter refs.
// Without it a request pays two D1 round trips (is it a base? which version?) before it is forwarded.
// Entries live MODEL_CACHE_MS, like the route cache (experiments/experiments-cache.ts), so a change made in
// another isolate is seen within that time; a change made through this isolate (publish, alias move, yank,
// base registration) forgets its entries at once, so read-your-writes holds within an isolate.
// `name@N` rows are immutable except for a yank, which must stop serving them, so they expire like the rest.
// Misses are never kept: a version published a moment after a miss is found on the next request.
import type { ModelRef } from "../../../src/contracts/names.ts";
import { formatModelRef } from "../../../src/contracts/names.ts";
import { AppError } from "../../../src/errors.ts";
import { onChange } from "../common/invalidation.ts";
import { TtlLru } from "../common/ttl-lru.ts";
import type { StoredBaseModel } from "./base-model-store.ts";
import type { VersionRow } from "./registry-store.ts";

export const MODEL_CACHE_MS = 2_000;

/** Keys carry the tenant: two tenants' adapters of the same name never share an entry. */
const refKey = (tenant: string, ref: string) => `${tenant}\u0000${ref}`;

const refs = new TtlLru<VersionRow>({ maxEntries: 10_000, ttlMs: MODEL_CACHE_MS });
/** Base models are few and global, so the whole set is one entry; it answers "not a base" too. */
const bases = new TtlLru<ReadonlyMap<string, StoredBaseModel>>({ maxEntries: 1, ttlMs: MODEL_CACHE_MS });

/** The version `ref` names in this tenant; `load` throws model_not_found, and that is never kept. */
export async function cachedVersion(
  tenant: string,
  ref: ModelRef,
  load: () => Promise<VersionRow>,
): Promise<VersionRow> {
  const row = await refs.getOrLoad(refKey(tenant, formatModelRef(ref)), load);
  if (row === null) throw new AppError("internal_error", `resolving ${formatModelRef(ref)} returned no row`);
  return row;
}

/** Forgets every ref of one adapter (`name`, `name@N`, `name@alias`) after a write to it. */
export function forgetAdapter(tenant: string, name: string): void {
  const exact = refKey(tenant, name);
  const prefix = `${exact}@`;
  refs.deleteWhere((key) => key === exact || key.startsWith(prefix));
}

export async function cachedBaseModels(
  load: () => Promise<ReadonlyMap<string, StoredBaseModel>>,
): Promise<ReadonlyMap<string, StoredBaseModel>> {
  return (await bases.getOrLoad("all", load)) ?? new Map();
}

export function forgetBaseModels(): void {
  bases.clear();
}

onChange((change) => {
  if (change.kind === "adapter") forgetAdapter(change.tenant, change.name);
  else if (change.kind === "base_models") forgetBaseModels();
});
