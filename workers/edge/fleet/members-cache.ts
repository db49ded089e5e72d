// The live fleet as this isolate last read it. Without it every request would pay a D1 round trip to learn
// the pool. The whole set is one entry kept MEMBERS_CACHE_MS (README, "Runner fleets"): a member that joined
// through another isolate gets traffic here within that bound; one that drains or lapses is still tried for
// at most that long, and it answers 503 (draining) or does not answer, both of which move the request to the
// next runner before its first byte. A join, drain or leave through this isolate forgets the entry at once.
import { TtlLru } from "../common/ttl-lru.ts";
import type { Member } from "./member-store.ts";

export const MEMBERS_CACHE_MS = 2_000;

const members = new TtlLru<readonly Member[]>({ maxEntries: 1, ttlMs: MEMBERS_CACHE_MS });

/** Members holding a lease (draining ones included: the pool skips them, the console shows them). */
export async function cachedMembers(load: () => Promise<readonly Member[]>): Promise<readonly Member[]> {
  return (await members.getOrLoad("all", load)) ?? [];
}

export function forgetMembers(): void {
  members.clear();
}
