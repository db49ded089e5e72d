// The per-minute limits of one tenant and its keys, as token buckets held by the tenant's meter
// (usage/tenant-meter.ts), the one place all of a tenant's requests pass. Isolates do not take single
// requests from it: they lease slices of the buckets (limits/allowance-lease.ts) and admit from those, so a
// bucket is debited by what was granted (docs/decisions/0007-usage-metering.md). Tokens are charged when the
// runner has reported them, so a bucket may go below zero and then grants nothing until it has refilled.
// Pure: the clock comes in as `now`; the meter persists the buckets it is told changed.
import type { StoredRateLimits } from "../../../src/contracts/limits.ts";
import { type Bucket, type BucketView, fullBucket, refill } from "../../../src/limits/token-bucket.ts";

export type LimitKind = "requests" | "tokens";

/** The limits one request is held to: its key's and its tenant's. */
export interface LimitsInput {
  keyId: string;
  key: StoredRateLimits;
  tenant: StoredRateLimits;
}

/** What the `x-ratelimit-*` headers report: per kind, the binding one of the key's and the tenant's limits. */
export interface LimitSnapshot {
  requests: BucketView | null;
  tokens: BucketView | null;
}

export interface Slot {
  id: string;
  scope: string;
  kind: LimitKind;
  limit: number;
}

const LIMIT_FIELD: Record<LimitKind, keyof StoredRateLimits> = {
  requests: "requestsPerMinute",
  tokens: "tokensPerMinute",
};

/** The buckets a request of `kind` is held to: its key's and its tenant's, where they have a limit. */
export function slots(input: LimitsInput, kind: LimitKind): Slot[] {
  const out: Slot[] = [];
  const keyLimit = input.key[LIMIT_FIELD[kind]];
  if (keyLimit !== null)
    out.push({ id: `key:${input.keyId}:${kind}`, scope: `key ${input.keyId}`, kind, limit: keyLimit });
  const tenantLimit = input.tenant[LIMIT_FIELD[kind]];
  if (tenantLimit !== null) out.push({ id: `tenant:${kind}`, scope: "the tenant", kind, limit: tenantLimit });
  return out;
}

/** Buckets idle longer than this are full again and can be forgotten. */
const IDLE_MS = 120_000;

/** A bucket as the meter stores it, so an evicted meter starts where it left off. */
export interface StoredBucket {
  id: string;
  level: number;
  at: number;
  limit: number;
}

export class Limiter {
  readonly #buckets = new Map<string, Bucket & { limit: number }>();
  readonly #changed = new Set<string>();

  /** Buckets as stored before an eviction (the meter's storage). */
  restore(rows: StoredBucket[]): void {
    for (const row of rows) this.#buckets.set(row.id, { level: row.level, at: row.at, limit: row.limit });
  }

  #bucket(slot: Slot, now: number): Bucket {
    this.#changed.add(slot.id);
    const held = this.#buckets.get(slot.id);
    if (held === undefined) {
      const bucket = { ...fullBucket(slot.limit, now), limit: slot.limit };
      this.#buckets.set(slot.id, bucket);
      return bucket;
    }
    // A raised limit gives its extra units at once; a lowered one applies at once too, since a bucket never
    // holds more than its current limit.
    if (slot.limit > held.limit) held.level += slot.limit - held.limit;
    const bucket = { ...refill(held, slot.limit, now), limit: slot.limit };
    this.#buckets.set(slot.id, bucket);
    return bucket;
  }

  /**
   * Takes back `give` units an isolate did not use, then grants it up to `want` whole units: all the bucket
   * has when it holds less, none when it holds less than one. Returns the grant and the level it left.
   */
  grant(slot: Slot, want: number, give: number, now: number): { granted: number; level: number } {
    const bucket = this.#bucket(slot, now);
    if (give > 0) bucket.level = Math.min(slot.limit, bucket.level + give);
    const granted = bucket.level >= 1 ? Math.max(0, Math.floor(Math.min(want, bucket.level))) : 0;
    bucket.level -= granted;
    return { granted, level: bucket.level };
  }

  /** Charges tokens the runner reported to the key's and the tenant's token buckets. */
  charge(input: LimitsInput, tokens: number, now: number): void {
    if (tokens <= 0) return;
    for (const slot of slots(input, "tokens")) this.#bucket(slot, now).level -= tokens;
  }

  /** The buckets changed since the last call, to persist, and those forgotten, to delete. */
  changes(): { write: StoredBucket[]; forget: string[] } {
    const write: StoredBucket[] = [];
    const forget: string[] = [];
    for (const id of this.#changed) {
      const b = this.#buckets.get(id);
      if (b === undefined) forget.push(id);
      else write.push({ id, level: b.level, at: b.at, limit: b.limit });
    }
    this.#changed.clear();
    return { write, forget };
  }

  /** Drops buckets that have been full for a while, so a tenant with many keys holds only the busy ones. */
  sweep(now: number): void {
    for (const [id, bucket] of this.#buckets)
      if (now - bucket.at > IDLE_MS && bucket.level > 0) {
        this.#buckets.delete(id);
        this.#changed.add(id);
      }
  }
}
