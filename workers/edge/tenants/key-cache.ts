// API keys as this isolate last read them, by the sha256 of the secret (a heap never holds a usable key).
// Without it every request pays a D1 round trip before anything else happens. Only live keys are kept, and
// for KEY_CACHE_MS: a key revoked through this isolate stops working at once, one revoked elsewhere within
// KEY_CACHE_MS (README, "Edge API"). Unknown keys are never kept, so a guesser cannot fill the cache and a
// key works the moment it is created.

import { onChange } from "../common/invalidation.ts";
import { TtlLru } from "../common/ttl-lru.ts";
import type { LiveKey } from "./key-store.ts";

export const KEY_CACHE_MS = 5_000;

const keys = new TtlLru<LiveKey>({ maxEntries: 10_000, ttlMs: KEY_CACHE_MS });

/** The live key with this hash: from the cache, or from `load` (D1) when it is not there or too old. */
export async function cachedKey(
  hash: string,
  load: () => Promise<LiveKey | null>,
  now = Date.now(),
): Promise<LiveKey | null> {
  const key = await keys.getOrLoad(hash, load);
  if (key === null) return null;
  // Expiry is a fact of the row, so it holds to the millisecond even for a cached key.
  if (key.expiresAt !== null && key.expiresAt <= now) {
    keys.delete(hash);
    return null;
  }
  return key;
}

export function forgetKey(hash: string): void {
  keys.delete(hash);
}

onChange((change) => {
  if (change.kind === "key") forgetKey(change.hash);
});
