// The adapter tiers in /metrics: what each tier holds (read at scrape time) and how slots are refilled. vLLM
// exports no series for its CPU LoRA cache (only vllm:lora_requests_info, with max_lora), so these are the
// runner's own, named as its other series; the per-adapter series carry the content id, never a name.
import type { HostTier } from "../../src/contracts/runner.ts";
import { Counter, GaugeSeries, Histogram, type RunnerMetrics } from "./metrics.ts";

export interface AdapterTierMetrics {
  /** Weights copied into a slot, by source: "load" (first placement) or "host" (a refill from host memory). */
  slotWrites: Counter;
  slotWriteSeconds: Histogram;
  /** Parse, validation and decode of an uploaded or read adapter (a load's work before any slot write). */
  prepareSeconds: Histogram;
  /** Adapters dropped from host memory to make room under its bounds. */
  hostEvictions: Counter;
  /** Slots set draining so that an adapter waiting for a slot gets one. */
  slotDrains: Counter;
  /** Requests that waited for a slot, and those whose wait ran past the deadline. */
  slotWaits: Counter;
  slotWaitTimeouts: Counter;
}

export function createAdapterTierMetrics(metrics: RunnerMetrics): AdapterTierMetrics {
  return {
    slotWrites: metrics.register(
      new Counter(
        "runner_adapter_slot_writes_total",
        "Adapter weights copied into a slot, by source (load, host)",
      ),
    ),
    slotWriteSeconds: metrics.register(
      new Histogram(
        "runner_adapter_slot_write_seconds",
        "Time to copy one adapter's weights into a slot",
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      ),
    ),
    prepareSeconds: metrics.register(
      new Histogram(
        "runner_adapter_prepare_seconds",
        "Time to parse, validate and decode one loaded adapter's files",
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      ),
    ),
    hostEvictions: metrics.register(
      new Counter("runner_adapter_host_evictions_total", "Adapters evicted from host memory to make room"),
    ),
    slotDrains: metrics.register(
      new Counter("runner_adapter_slot_drains_total", "Slots drained so that a waiting adapter gets one"),
    ),
    slotWaits: metrics.register(
      new Counter("runner_adapter_slot_waits_total", "Requests that waited for an adapter slot"),
    ),
    slotWaitTimeouts: metrics.register(
      new Counter(
        "runner_adapter_slot_wait_timeouts_total",
        "Requests refused (503) after waiting past the slot deadline",
      ),
    ),
  };
}

/** What the gauges read of the adapter cache (its own type would make the two modules import each other). */
export interface TierView {
  readonly hostCount: number;
  usedBytes(): number;
  readonly limits: { maxAdapters: number | null; budgetBytes: number };
  host(): HostTier;
}

/**
 * Gauges over the tiers' contents, read when scraped, and the process's resident memory (the name
 * Prometheus' process collector and so vLLM's /metrics use), against which the host tier's bytes are budgeted.
 */
export function watchAdapterTiers(
  metrics: RunnerMetrics,
  adapters: TierView,
  residentBytes: () => number = () => process.memoryUsage().rss,
): void {
  metrics.addGauge("process_resident_memory_bytes", "Resident memory size in bytes", residentBytes);
  metrics.addGauge(
    "runner_host_adapters",
    "Adapters in the host-memory tier (those in slots included)",
    () => adapters.hostCount,
  );
  metrics.addGauge("runner_host_adapter_bytes", "Bytes of decoded adapter weights in host memory", () =>
    adapters.usedBytes(),
  );
  metrics.addGauge(
    "runner_host_adapter_budget_bytes",
    "Host-memory tier budget (--adapter-cache-bytes)",
    () => adapters.limits.budgetBytes,
  );
  metrics.register(
    new GaugeSeries(
      "runner_host_adapter_limit",
      "Most adapters in host memory (--max-cpu-loras); absent when bounded by bytes only",
      () =>
        adapters.limits.maxAdapters === null ? [] : [{ labels: {}, value: adapters.limits.maxAdapters }],
    ),
  );
  metrics.register(
    new GaugeSeries(
      "runner_adapter_tier_bytes",
      "Host bytes of each loaded adapter, by content id, tier (gpu: in a slot too; host: host memory only) and pin",
      () =>
        adapters.host().data.map((a) => ({
          labels: {
            adapter_id: a.adapterId,
            tier: a.slot === null ? "host" : "gpu",
            slot: a.slot === null ? "" : String(a.slot),
            pinned: String(a.pinned),
          },
          value: a.hostBytes,
        })),
    ),
  );
}
