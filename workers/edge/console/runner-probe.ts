// Reads what a runner says about itself (/health, /v1/adapters, /metrics) for the runners page. A runner
// that does not answer, or answers something unparseable, is reported as such; the page still renders.
import { z } from "zod";
import {
  type ResidentAdapter,
  ResidentAdapterSchema,
  RunnerHealthSchema,
} from "../../../src/contracts/runner.ts";
import type { Runner } from "../pool/runner-client.ts";
import { metricsByAdapter, parseSamples, sumMetrics } from "./prometheus-text.ts";

// Loose views of the runner contract: a page must still show a runner one release ahead or behind this edge.
const HealthView = z.looseObject(
  RunnerHealthSchema.pick({
    status: true,
    model: true,
    device: true,
    backend: true,
    queueDepth: true,
    uptimeS: true,
  }).shape,
);
const ResidentView = z.looseObject({
  maxSlots: z.number(),
  data: z.array(z.looseObject(ResidentAdapterSchema.shape)),
});
export type HealthView = z.infer<typeof HealthView>;

export type RunnerFetch = (input: string, init: RequestInit) => Promise<Response>;

/** The page waits this long for each runner; a slow runner must not hold the page. */
const PROBE_TIMEOUT_MS = 3_000;

export interface RunnerReport {
  index: number;
  health: HealthView | null;
  resident: ResidentAdapter[];
  maxSlots: number | null;
  /** Sums over all label sets of each sample name in /metrics. */
  metrics: Map<string, number>;
  /** /metrics per adapter content id (`adapter_id` label): sample name → value. */
  byAdapter: Map<string, Map<string, number>>;
  problem: string | null;
}

async function get(f: RunnerFetch, r: Runner, path: string): Promise<Response> {
  return await f(`${r.url}${path}`, {
    method: "GET",
    headers: { authorization: `Bearer ${r.token}`, "x-request-id": "console" },
    signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
  });
}

export async function probeRunner(f: RunnerFetch, r: Runner): Promise<RunnerReport> {
  const report: RunnerReport = {
    index: r.index,
    health: null,
    resident: [],
    maxSlots: null,
    metrics: new Map(),
    byAdapter: new Map(),
    problem: null,
  };
  try {
    const [health, adapters, metrics] = await Promise.all([
      get(f, r, "/health"),
      get(f, r, "/v1/adapters"),
      get(f, r, "/metrics"),
    ]);
    const h = HealthView.safeParse(await health.json().catch(() => null));
    const a = ResidentView.safeParse(await adapters.json().catch(() => null));
    report.health = h.success ? h.data : null;
    report.resident = a.success ? a.data.data : [];
    report.maxSlots = a.success ? a.data.maxSlots : null;
    const samples = metrics.ok ? parseSamples(await metrics.text()) : [];
    report.metrics = sumMetrics(samples);
    report.byAdapter = metricsByAdapter(samples);
    const broken = [
      h.success ? null : `/health (HTTP ${health.status})`,
      a.success ? null : `/v1/adapters (HTTP ${adapters.status})`,
      metrics.ok ? null : `/metrics (HTTP ${metrics.status})`,
    ].filter((x) => x !== null);
    if (broken.length > 0) report.problem = `gave no usable answer on ${broken.join(", ")}`;
  } catch (error) {
    // The URL stays in the log: tenants see runners by position only.
    console.error(`console: runner ${r.index} (${r.url}) probe failed:`, error);
    report.problem = "did not answer";
  }
  return report;
}
