// Reads the runner's /metrics (Prometheus text format 0.0.4) into what the runners page shows: pool-wide sums
// and per-adapter counters keyed by content id, the only adapter identity that is unique across tenants.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function labelValue(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

/** Every sample line; comments, histogram buckets and lines that do not parse are skipped. */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    const labels = Object.fromEntries(
      [...(match[2] ?? "").matchAll(LABEL)].map((m) => [m[1] as string, labelValue(m[2] as string)]),
    );
    if (!Number.isFinite(value) || "le" in labels) continue;
    samples.push({ name: match[1] as string, labels, value });
  }
  return samples;
}

/** Each sample name's values summed over their labels. */
export function sumMetrics(samples: Sample[]): Map<string, number> {
  const sums = new Map<string, number>();
  for (const s of samples) sums.set(s.name, (sums.get(s.name) ?? 0) + s.value);
  return sums;
}

/**
 * Per `adapter_id` label: each sample name's value. An id appears once the runner exposes any series for it
 * (`runner_adapter_info` lists every resident adapter), so a missing counter then means 0, while an id the
 * runner never names (an older runner that labelled by display name) stays unknown rather than 0.
 */
export function metricsByAdapter(samples: Sample[]): Map<string, Map<string, number>> {
  const byAdapter = new Map<string, Map<string, number>>();
  for (const s of samples) {
    const id = s.labels.adapter_id;
    if (id === undefined) continue;
    const values = byAdapter.get(id) ?? new Map<string, number>();
    values.set(s.name, (values.get(s.name) ?? 0) + s.value);
    byAdapter.set(id, values);
  }
  return byAdapter;
}
