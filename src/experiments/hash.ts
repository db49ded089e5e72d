// Sticky assignment hashing (docs/decisions/0004-ab-assignment-hash.md): GrowthBook's v2 bucket, FNV-1a
// 32-bit applied twice, synchronous so the hot path never waits on WebCrypto. The second pass spreads
// sequential ids (user-1, user-2, ...) that a single FNV pass leaves correlated in the low digits.

/** Buckets per experiment: weights are basis points, so one bucket is one basis point of traffic. */
export const BUCKETS = 10_000;

const encoder = new TextEncoder();

/** FNV-1a 32-bit over the UTF-8 bytes of `text`; for ASCII this equals GrowthBook's SDK byte for byte. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** GrowthBook v2: `fnv(str(fnv(seed + value))) % 10000`, as an integer bucket in [0, 10000). */
export function bucketOf(seed: string, value: string): number {
  return fnv1a32(String(fnv1a32(seed + value))) % BUCKETS;
}

/**
 * The bucket of `subject` in a route: seed `<route>:<salt>:`. Route names and salts cannot contain ":",
 * so distinct (route, salt, subject) triples never share a hashed string.
 */
export function assignmentBucket(route: string, salt: string, subject: string): number {
  return bucketOf(`${route}:${salt}:`, subject);
}

/** Whether a shadow variant copies this subject's traffic: its own seed, so mirroring is independent of the split. */
export function shadowBucket(route: string, salt: string, variant: string, subject: string): number {
  return bucketOf(`${route}:${salt}:shadow:${variant}:`, subject);
}
