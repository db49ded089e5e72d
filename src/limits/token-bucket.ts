// Per-minute limits as token buckets: a bucket holds up to `limit` units and refills continuously at
// `limit` per minute, so a caller may burst to its limit and then proceeds at the limit's pace (the shape of
// OpenAI's request and token limits). Pure: the caller passes the clock, so the meter can keep its buckets in
// memory and tests can move time (docs/conventions.md#composition-roots).

export const MINUTE_MS = 60_000;

export interface Bucket {
  /** Units available at `at`; negative after a charge larger than what was there (tokens counted late). */
  level: number;
  /** Epoch ms of the last refill. */
  at: number;
}

/** A full bucket: a new key or tenant starts with its whole minute. */
export function fullBucket(limit: number, now: number): Bucket {
  return { level: limit, at: now };
}

/** The bucket refilled up to `now` (never above `limit`); a clock that went back refills nothing. */
export function refill(bucket: Bucket, limit: number, now: number): Bucket {
  const elapsed = Math.max(0, now - bucket.at);
  return {
    level: Math.min(limit, bucket.level + (elapsed * limit) / MINUTE_MS),
    at: Math.max(now, bucket.at),
  };
}

export interface BucketView {
  limit: number;
  /** Whole units left now, never below 0 (the header OpenAI calls `x-ratelimit-remaining-*`). */
  remaining: number;
  /** Milliseconds until the bucket is full again (`x-ratelimit-reset-*`). */
  resetMs: number;
}

export function view(bucket: Bucket, limit: number): BucketView {
  const missing = Math.max(0, limit - bucket.level);
  return {
    limit,
    remaining: Math.max(0, Math.floor(bucket.level)),
    resetMs: Math.ceil((missing * MINUTE_MS) / limit),
  };
}

/** Milliseconds until the bucket holds at least `need` units (0 when it does now). */
export function waitFor(bucket: Bucket, limit: number, need: number): number {
  const missing = need - bucket.level;
  return missing <= 0 ? 0 : Math.ceil((missing * MINUTE_MS) / limit);
}

/**
 * OpenAI's spelling of a duration in `x-ratelimit-reset-*`: `20ms` below a second, otherwise hours, minutes
 * and seconds as Go prints them (`1s`, `6m0s`, `1h2m3.5s`).
 */
export function formatReset(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1000) return `${whole}ms`;
  const hours = Math.floor(whole / 3_600_000);
  const minutes = Math.floor((whole % 3_600_000) / 60_000);
  const seconds = (whole % 60_000) / 1000;
  const s = `${Number(seconds.toFixed(3))}s`;
  if (hours > 0) return `${hours}h${minutes}m${s}`;
  if (minutes > 0) return `${minutes}m${s}`;
  return s;
}
