// Which runner serves a request: a pure function of the adapter, the pool and what this isolate knows.
// Weighted rendezvous hashing gives each adapter a stable order over runners (adding a runner moves only the
// adapters that now score highest on it), so an adapter stays warm on few runners. Runners known to hold the
// adapter come first (the LoRA-affinity idea of the Kubernetes inference gateway). A load bound in the style
// of "consistent hashing with bounded loads" (Mirrokni, Thorup, Zadimoghaddam 2018) spills a hot adapter to
// its next runner, but only past a floor: a runner batches concurrent requests, so spilling a handful of them
// would only cost a second cold load.

export interface Candidate {
  url: string;
  weight: number;
  /** Requests this isolate has in flight to the runner. */
  inFlight: number;
  healthy: boolean;
  /** This isolate saw the runner hold (or load) the adapter. */
  resident: boolean;
}

export interface LoadBound {
  /** A runner may take this many times its weighted share of the in-flight requests... */
  factor: number;
  /** ...but never fewer than this many per unit of weight. */
  floor: number;
}

export const DEFAULT_LOAD_BOUND: LoadBound = { factor: 1.25, floor: 16 };

/** FNV-1a with murmur3's finalizer: FNV alone mixes short, similar strings poorly in the high bits. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Weighted rendezvous score (Schindelhauer & Schomaker): -w / ln(u), u uniform in (0, 1). */
export function score(url: string, weight: number, key: string): number {
  const u = (hash32(`${url}\n${key}`) + 0.5) / 2 ** 32;
  return -weight / Math.log(u);
}

/** Runners for `key`, best first: whom to try, then whom to fail over to, in that order. */
export function rank<T extends Candidate>(candidates: T[], key: string, bound = DEFAULT_LOAD_BOUND): T[] {
  const byScore = candidates
    .map((c) => ({ c, s: score(c.url, c.weight, key) }))
    .sort((a, b) => b.s - a.s)
    .map((x) => x.c);
  const healthy = byScore.filter((c) => c.healthy);
  // Runners that failed recently stay in the list, last: when every runner looks down, trying beats refusing.
  const down = byScore.filter((c) => !c.healthy);
  const preferred = [...healthy.filter((c) => c.resident), ...healthy.filter((c) => !c.resident)];
  const total = candidates.reduce((sum, c) => sum + c.inFlight, 0);
  const weights = healthy.reduce((sum, c) => sum + c.weight, 0);
  const underBound = (c: T) =>
    c.inFlight <
    Math.max(bound.floor * c.weight, Math.ceil((bound.factor * (total + 1) * c.weight) / weights));
  const first = preferred.find(underBound) ?? leastLoaded(preferred);
  if (first === undefined) return down;
  return [first, ...preferred.filter((c) => c !== first), ...down];
}

function leastLoaded<T extends Candidate>(list: T[]): T | undefined {
  let best: T | undefined;
  for (const c of list)
    if (best === undefined || c.inFlight / c.weight < best.inFlight / best.weight) best = c;
  return best;
}
