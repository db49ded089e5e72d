// Per-variant results of a route: counts, error rate, latency percentiles, tokens, feedback with intervals,
// the difference to control, and the sample-ratio-mismatch test over the current split.
import type { Results, Variant, VariantResult } from "../../../src/contracts/experiments.ts";
import {
  differenceInterval,
  type Moments,
  meanInterval,
  nearestRankIndex,
  sampleRatioMismatch,
} from "../../../src/experiments/stats.ts";
import type { ExperimentStore, StoredRoute, VariantStatsRow } from "./experiment-store.ts";

const EMPTY: VariantStatsRow = {
  variant: "",
  n: 0,
  errors: 0,
  prompt_tokens: 0,
  completion_tokens: 0,
  fb_n: 0,
  fb_sum: 0,
  fb_sq: 0,
  current_n: 0,
};

const moments = (s: VariantStatsRow): Moments => ({ n: s.fb_n, sum: s.fb_sum, sumSquares: s.fb_sq });

/** Expected share of each live variant under the split as served now: cut variants' buckets go to control. */
function effectiveShares(route: StoredRoute, live: Variant[]): number[] {
  const cut = live.filter((v) => v.cut !== null).reduce((n, v) => n + v.weight, 0);
  return live.map((v) => (v.cut !== null ? 0 : v.weight + (v.name === route.config.control ? cut : 0)));
}

export async function routeResults(store: ExperimentStore, route: StoredRoute): Promise<Results> {
  const [rows, labels] = await Promise.all([
    store.variantStats(route.id, route.version),
    store.labels(route.id),
  ]);
  const stats = (name: string) => rows.find((r) => r.variant === name) ?? EMPTY;
  const variants = route.config.variants;
  const wanted = variants.flatMap((v) => {
    const n = stats(v.name).n;
    return n === 0 ? [] : [0.5, 0.95].map((p) => ({ variant: v.name, p, rank: nearestRankIndex(n, p) }));
  });
  const latencies = await store.latencyAt(route.id, wanted);
  const latency = (name: string, p: number) =>
    latencies[wanted.findIndex((w) => w.variant === name && w.p === p)] ?? null;
  const control = moments(stats(route.config.control));
  const results: VariantResult[] = variants.map((v) => {
    const s = stats(v.name);
    const mean = meanInterval(moments(s));
    return {
      variant: v.name,
      target: v.target,
      shadow: v.shadow,
      weight: v.weight,
      state: v.cut === null ? "active" : "cut",
      cutReason: v.cut?.reason ?? null,
      n: s.n,
      errors: s.errors,
      errorRate: s.n === 0 ? null : s.errors / s.n,
      latencyMs: { p50: latency(v.name, 0.5), p95: latency(v.name, 0.95) },
      tokens: { prompt: s.prompt_tokens, completion: s.completion_tokens },
      feedback: {
        n: s.fb_n,
        mean: mean?.mean ?? null,
        ci95: mean?.ci95 ?? null,
        labels: Object.fromEntries(labels.filter((l) => l.variant === v.name).map((l) => [l.label, l.n])),
      },
      diffToControl:
        v.name === route.config.control || v.shadow ? null : differenceInterval(moments(s), control),
    };
  });
  const live = variants.filter((v) => !v.shadow);
  return {
    route: route.name,
    status: route.status,
    version: route.version,
    control: route.config.control,
    variants: results,
    srm: sampleRatioMismatch(
      live.map((v) => stats(v.name).current_n),
      effectiveShares(route, live),
    ),
  };
}
