// Bucket ranges of a split. Each live variant owns a set of [start, end) ranges over the 10,000 buckets,
// sized by its weight in basis points. Ranges are stored with the route and only ever rebalanced
// minimally: a variant whose weight drops gives up the tail of its ranges, a variant whose weight rises takes
// freed buckets, and nobody else moves. That is what keeps assignments sticky across weight changes.
import { BUCKETS } from "./hash.ts";

export type BucketRange = readonly [start: number, end: number];

export interface RangedVariant {
  name: string;
  weight: number;
  ranges: BucketRange[];
}

function size(ranges: readonly BucketRange[]): number {
  return ranges.reduce((n, [s, e]) => n + (e - s), 0);
}

/** Sorts and joins touching ranges, so stored configs stay short after many rebalances. */
export function mergeRanges(ranges: readonly BucketRange[]): BucketRange[] {
  const sorted = [...ranges].filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last[1] === s) last[1] = e;
    else out.push([s, e]);
  }
  return out;
}

/** Contiguous ranges in variant order: the first variant starts at bucket 0. */
export function initialRanges(weights: readonly { name: string; weight: number }[]): RangedVariant[] {
  let at = 0;
  return weights.map(({ name, weight }) => {
    const ranges: BucketRange[] = weight > 0 ? [[at, at + weight]] : [];
    at += weight;
    return { name, weight, ranges };
  });
}

/** Keeps the first `keep` buckets of `ranges`; returns what is kept and what is freed. */
function shrink(ranges: readonly BucketRange[], keep: number): { kept: BucketRange[]; freed: BucketRange[] } {
  const kept: BucketRange[] = [];
  const freed: BucketRange[] = [];
  let left = keep;
  for (const [s, e] of mergeRanges(ranges)) {
    const take = Math.min(left, e - s);
    if (take > 0) kept.push([s, s + take]);
    if (take < e - s) freed.push([s + take, e]);
    left -= take;
  }
  return { kept, freed };
}

/** Takes `want` buckets from the front of the free list (mutated). */
function take(free: [number, number][], want: number): BucketRange[] {
  const got: BucketRange[] = [];
  let left = want;
  while (left > 0) {
    const head = free[0];
    if (head === undefined)
      throw new Error(`rebalance: ${left} buckets short; weights must sum to ${BUCKETS}`);
    const n = Math.min(left, head[1] - head[0]);
    got.push([head[0], head[0] + n]);
    head[0] += n;
    if (head[0] === head[1]) free.shift();
    left -= n;
  }
  return got;
}

/**
 * New ranges for new weights (same variants, same order; weights sum to 10,000). Subjects move only out of
 * variants whose weight fell and only into variants whose weight rose.
 */
export function rebalance(
  current: readonly RangedVariant[],
  weights: ReadonlyMap<string, number>,
): RangedVariant[] {
  const freed: BucketRange[] = [];
  const shrunk = current.map((v) => {
    const weight = weights.get(v.name) ?? v.weight;
    const { kept, freed: released } = shrink(v.ranges, Math.min(weight, size(v.ranges)));
    freed.push(...released);
    return { name: v.name, weight, ranges: kept };
  });
  const free = mergeRanges(freed).map(([s, e]) => [s, e] as [number, number]);
  const grown = shrunk.map((v) => {
    const missing = v.weight - size(v.ranges);
    return missing > 0 ? { ...v, ranges: mergeRanges([...v.ranges, ...take(free, missing)]) } : v;
  });
  if (free.length > 0)
    throw new Error(`rebalance: ${size(free)} buckets left over; weights must sum to ${BUCKETS}`);
  return grown;
}

/** The variant that owns `bucket`; ranges cover [0, 10000) exactly once, so there is always one. */
export function ownerOf(variants: readonly RangedVariant[], bucket: number): string {
  for (const v of variants) {
    for (const [s, e] of v.ranges) if (bucket >= s && bucket < e) return v.name;
  }
  throw new Error(`bucket ${bucket} is owned by no variant; ranges must cover 0..${BUCKETS - 1}`);
}

/** Problems with a set of ranges: overlaps, holes, or a size that differs from the weight. */
export function rangeProblems(variants: readonly RangedVariant[]): string[] {
  const problems: string[] = [];
  for (const v of variants) {
    const n = size(v.ranges);
    if (n !== v.weight) problems.push(`variant ${v.name}: ranges cover ${n} buckets; weight is ${v.weight}`);
  }
  const all = variants.flatMap((v) => v.ranges).sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [s, e] of all) {
    if (s < 0 || e > BUCKETS || e <= s) problems.push(`range [${s}, ${e}) is outside 0..${BUCKETS} or empty`);
    else if (s !== at)
      problems.push(s < at ? `ranges overlap at bucket ${s}` : `buckets ${at}..${s - 1} have no variant`);
    at = Math.max(at, e);
  }
  if (at !== BUCKETS) problems.push(`buckets ${at}..${BUCKETS - 1} have no variant`);
  return problems;
}
