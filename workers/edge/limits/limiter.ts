// The per-minute limits of one tenant and its keys, as token buckets held in memory by the tenant's meter
// (usage/tenant-meter.ts), the one place all of a tenant's requests pass, so counts are exact across
// isolates and locations (docs/decisions/0007-usage-metering.md). Requests are taken when admitted; tokens are
// charged when the runner has reported them, so a bucket may go below zero and then admits nothing until it
// has refilled. Pure: the clock comes in as `now`.
import type { StoredRateLimits } from "../../../src/contracts/limits.ts";
import {
  type Bucket,
  type BucketView,
  fullBucket,
  refill,
  view,
  waitFor,
} from "../../../src/limits/token-bucket.ts";

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

export type Verdict =
  | { ok: true; snapshot: LimitSnapshot }
  | {
      ok: false;
      kind: LimitKind;
      scope: string;
      limit: number;
      retryAfterMs: number;
      snapshot: LimitSnapshot;
    };

interface Slot {
  id: string;
  scope: string;
  kind: LimitKind;
  limit: number;
}

const LIMIT_FIELD: Record<LimitKind, keyof StoredRateLimits> = {
  requests: "requestsPerMinute",
  tokens: "tokensPerMinute",
};

function slots(input: LimitsInput, kind: LimitKind): Slot[] {
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

export class Limiter {
  readonly #buckets = new Map<string, Bucket & { limit: number }>();

  #bucket(slot: Slot, now: number): Bucket {
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

  #snapshot(input: LimitsInput, kind: LimitKind, now: number): BucketView | null {
    let tightest: BucketView | null = null;
    for (const slot of slots(input, kind)) {
      const seen = view(this.#bucket(slot, now), slot.limit);
      if (tightest === null || seen.remaining < tightest.remaining) tightest = seen;
    }
    return tightest;
  }

  snapshot(input: LimitsInput, now: number): LimitSnapshot {
    return { requests: this.#snapshot(input, "requests", now), tokens: this.#snapshot(input, "tokens", now) };
  }

  /** Admits one request when every bucket has a request and a token left, and takes the request. */
  admit(input: LimitsInput, now: number): Verdict {
    for (const kind of ["requests", "tokens"] as const) {
      for (const slot of slots(input, kind)) {
        const bucket = this.#bucket(slot, now);
        if (bucket.level >= 1) continue;
        return {
          ok: false,
          kind,
          scope: slot.scope,
          limit: slot.limit,
          retryAfterMs: Math.max(1, waitFor(bucket, slot.limit, 1)),
          snapshot: this.snapshot(input, now),
        };
      }
    }
    for (const slot of slots(input, "requests")) this.#bucket(slot, now).level -= 1;
    return { ok: true, snapshot: this.snapshot(input, now) };
  }

  /** Charges tokens the runner reported to the key's and the tenant's token buckets. */
  charge(input: LimitsInput, tokens: number, now: number): void {
    if (tokens <= 0) return;
    for (const slot of slots(input, "tokens")) this.#bucket(slot, now).level -= tokens;
  }

  /** Drops buckets that have been full for a while, so a tenant with many keys holds only the busy ones. */
  sweep(now: number): void {
    for (const [id, bucket] of this.#buckets)
      if (now - bucket.at > IDLE_MS && bucket.level > 0) this.#buckets.delete(id);
  }
}
