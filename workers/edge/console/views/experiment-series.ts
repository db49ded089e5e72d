// Turns a route's exposure buckets into chart lines: each live variant's share of live traffic, and each
// variant's error rate and mean latency, per time bucket.
import type { TimeSeries } from "../queries.ts";
import type { Series } from "./charts.tsx";

export interface ExperimentSeries {
  xs: string[];
  shares: Series[];
  errorRates: Series[];
  latencies: Series[];
}

function label(t: number): string {
  return `${new Date(t).toISOString().slice(11, 19)} UTC`;
}

export function experimentSeries(
  ts: TimeSeries,
  variants: { name: string; shadow: boolean }[],
): ExperimentSeries {
  const xs = Array.from({ length: ts.buckets }, (_, i) => label(ts.start + i * ts.bucketMs));
  const at = (name: string, b: number) => ts.rows.find((r) => r.variant === name && r.bucket === b);
  const liveTotal = Array.from({ length: ts.buckets }, (_, b) =>
    ts.rows.filter((r) => r.bucket === b && r.shadow === 0).reduce((n, r) => n + r.n, 0),
  );
  const per = (f: (name: string, b: number) => number | null) =>
    variants.map((v) => ({ name: v.name, values: xs.map((_, b) => f(v.name, b)) }));
  const live = variants.filter((v) => !v.shadow);
  return {
    xs,
    shares: live.map((v) => ({
      name: v.name,
      values: xs.map((_, b) => {
        const total = liveTotal[b] ?? 0;
        return total === 0 ? null : (at(v.name, b)?.n ?? 0) / total;
      }),
    })),
    errorRates: per((name, b) => {
      const r = at(name, b);
      return r === undefined ? null : r.errors / r.n;
    }),
    latencies: per((name, b) => at(name, b)?.latency ?? null),
  };
}
