// vLLM's Prometheus series (`vllm:*`), beside the runner's own, so dashboards, alerts and autoscalers written
// for a vLLM server read this runner unchanged. Names, labels, buckets and meaning follow vLLM's v1 engine
// (vllm/v1/metrics/loggers.py); where this runner has no exact counterpart the series says what it measures
// instead. It only observes: it never changes what the scheduler does.
import { Counter, GaugeSeries, Histogram, type RunnerMetrics } from "./metrics.ts";
import type { FinishReason, GenerationRequest, SchedulerObserver, SchedulerSnapshot } from "./scheduler.ts";

/** vLLM's buckets for vllm:time_to_first_token_seconds. */
export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];
/** vLLM's buckets for vllm:inter_token_latency_seconds (those of the older time_per_output_token). */
export const INTER_TOKEN_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
/** vLLM's request latency buckets, used by vllm:e2e_request_latency_seconds. */
export const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];

/** vLLM's finished_reason values; "abort" is a request cancelled by its client or by shutdown. */
export const VLLM_FINISHED_REASONS = ["stop", "length", "abort"] as const;
export type VllmFinishedReason = (typeof VLLM_FINISHED_REASONS)[number];

export function vllmFinishedReason(reason: FinishReason): VllmFinishedReason {
  return reason === "cancelled" ? "abort" : reason;
}

export interface VllmMetricsOptions {
  /** The served base model's name: vLLM's `model_name` label. */
  modelName: string;
  /** Adapter slots (--max-loras): vLLM's `max_lora` label. */
  maxLoras: number;
  /** Wall clock in milliseconds since the epoch: vllm:lora_requests_info's value is a timestamp. */
  wallClock?: () => number;
}

export interface VllmMetrics {
  /** Passed to the Scheduler: the latencies and outcomes of requests. */
  observer: SchedulerObserver;
  /** Adds the gauges read from the scheduler at scrape time; call once the scheduler exists. */
  watch(scheduler: { snapshot(): SchedulerSnapshot }): void;
}

export function createVllmMetrics(metrics: RunnerMetrics, options: VllmMetricsOptions): VllmMetrics {
  const model = { model_name: options.modelName };
  const wallClock = options.wallClock ?? Date.now;
  const promptTokens = metrics.register(
    new Counter("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
  );
  const generationTokens = metrics.register(
    new Counter("vllm:generation_tokens_total", "Number of generation tokens processed."),
  );
  const success = metrics.register(
    new Counter("vllm:request_success_total", "Count of successfully processed requests."),
  );
  // vLLM creates every finished_reason series at start, so a rate() over "abort" exists before the first one
  for (const reason of VLLM_FINISHED_REASONS) success.inc({ ...model, finished_reason: reason }, 0);
  promptTokens.inc(model, 0);
  generationTokens.inc(model, 0);
  const ttft = metrics.register(
    new Histogram(
      "vllm:time_to_first_token_seconds",
      "Histogram of time to first token in seconds.",
      TTFT_BUCKETS,
      { labels: model, pythonLe: true },
    ),
  );
  const interToken = metrics.register(
    new Histogram(
      "vllm:inter_token_latency_seconds",
      "Histogram of inter-token latency in seconds.",
      INTER_TOKEN_BUCKETS,
      { labels: model, pythonLe: true },
    ),
  );
  const e2e = metrics.register(
    new Histogram(
      "vllm:e2e_request_latency_seconds",
      "Histogram of e2e request latency in seconds.",
      REQUEST_LATENCY_BUCKETS,
      { labels: model, pythonLe: true },
    ),
  );

  const observer: SchedulerObserver = {
    admitted(req: GenerationRequest) {
      promptTokens.inc(model, req.promptIds.length);
    },
    sampled(_req, first, seconds) {
      generationTokens.inc(model);
      (first ? ttft : interToken).observe(seconds);
    },
    finished(_req, reason, seconds) {
      success.inc({ ...model, finished_reason: vllmFinishedReason(reason) });
      e2e.observe(seconds);
    },
  };

  const watch = (scheduler: { snapshot(): SchedulerSnapshot }) => {
    const gauge = (name: string, help: string, read: (s: SchedulerSnapshot) => number) =>
      metrics.register(
        new GaugeSeries(name, help, () => [{ labels: model, value: read(scheduler.snapshot()) }]),
      );
    gauge("vllm:num_requests_running", "Number of requests in model execution batches.", (s) => s.running);
    gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", (s) => s.waiting);
    // vLLM: used blocks of its preallocated KV pool. This engine allocates KV per sequence, so the pool is
    // what the scheduler can hold at once: --max-batch sequences of the model's context length.
    gauge(
      "vllm:kv_cache_usage_perc",
      "KV-cache usage. 1 means 100 percent usage (positions held by running requests / max-batch x context).",
      (s) => (s.kvCapacity === 0 ? 0 : Math.min(1, s.kvTokens / s.kvCapacity)),
    );
    // As vLLM exports it: one series whose labels list the adapters by name and whose value is the time
    // (seconds since the epoch) they were read, so the newest series is the current one. vLLM gives this
    // series no model_name label.
    metrics.register(
      new GaugeSeries("vllm:lora_requests_info", "Running stats on lora requests.", () => {
        const s = scheduler.snapshot();
        return [
          {
            labels: {
              running_lora_adapters: s.runningLoras.join(","),
              waiting_lora_adapters: s.waitingLoras.join(","),
              max_lora: String(options.maxLoras),
            },
            value: wallClock() / 1000,
          },
        ];
      }),
    );
  };
  return { observer, watch };
}
