// /metrics carries vLLM's series beside the runner's, with vLLM's names, labels, buckets and meaning: every
// `vllm:` series is read back through a Prometheus text parser after real requests, and its counts are
// checked against what the responses reported.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionSchema, CompletionSchema } from "../../src/contracts/openai.ts";
import { histogramSeries, type PromFamily, parsePrometheusText } from "../helpers/prometheus-text.ts";
import { type DemoDirs, makeDemoDirs, sseData, startTestRunner, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  const support = await dirs.adapter("support", { seed: 5 });
  const sql = await dirs.adapter("sql", { seed: 6 });
  // one row at a time, so a second request is seen waiting
  t = await startTestRunner(dirs.model, {
    loras: [
      { name: "support", path: support },
      { name: "sql", path: sql },
    ],
    maxLoras: 4,
    maxBatch: 1,
    maxQueue: 4,
  });
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

const MODEL = { model_name: "demo-llama" };

// vLLM's own bucket bounds (vllm/v1/metrics/loggers.py), written out here rather than imported, so the test
// says what vLLM uses instead of repeating what the runner does
const VLLM_BUCKETS: Record<string, number[]> = {
  "vllm:time_to_first_token_seconds": [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160,
    640, 2560,
  ],
  "vllm:inter_token_latency_seconds": [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
  ],
  "vllm:e2e_request_latency_seconds": [
    0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
  ],
};

const VLLM_FAMILIES: Record<string, string> = {
  "vllm:num_requests_running": "gauge",
  "vllm:num_requests_waiting": "gauge",
  "vllm:kv_cache_usage_perc": "gauge",
  "vllm:lora_requests_info": "gauge",
  "vllm:prompt_tokens_total": "counter",
  "vllm:generation_tokens_total": "counter",
  "vllm:request_success_total": "counter",
  "vllm:time_to_first_token_seconds": "histogram",
  "vllm:inter_token_latency_seconds": "histogram",
  "vllm:e2e_request_latency_seconds": "histogram",
};

interface Scrape {
  families: Map<string, PromFamily>;
  /** The one sample of `name` whose labels are exactly `labels`. */
  value(name: string, labels?: Record<string, string>): number;
  histogram(name: string): ReturnType<typeof histogramSeries>;
  lora(): { labels: Record<string, string>; value: number };
  /** Wall-clock seconds just before and after the scrape. */
  at: [number, number];
}

async function scrape(): Promise<Scrape> {
  const before = Date.now() / 1000;
  const res = await t.app.request("/metrics");
  const after = Date.now() / 1000;
  expect(res.status).toBe(200);
  const families = parsePrometheusText(await res.text());
  const family = (name: string) => {
    const f = families.get(name);
    if (f === undefined) throw new Error(`no family ${name}`);
    return f;
  };
  return {
    families,
    at: [before, after],
    value(name, labels = MODEL) {
      const key = JSON.stringify(Object.entries(labels).sort());
      const found = family(name).samples.filter(
        (s) => JSON.stringify(Object.entries(s.labels).sort()) === key,
      );
      expect(found, `${name}${JSON.stringify(labels)}`).toHaveLength(1);
      return found[0]?.value as number;
    },
    histogram: (name) => histogramSeries(family(name), MODEL),
    lora() {
      const samples = family("vllm:lora_requests_info").samples;
      expect(samples).toHaveLength(1);
      return samples[0] as { labels: Record<string, string>; value: number };
    },
  };
}

const success = (s: Scrape, reason: string) =>
  s.value("vllm:request_success_total", { ...MODEL, finished_reason: reason });

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("vLLM's series on /metrics", () => {
  it("exposes every series with vLLM's type, labels and buckets, at zero before any request", async () => {
    const s = await scrape();
    const vllm = [...s.families.values()].filter((f) => f.name.startsWith("vllm:"));
    expect(Object.fromEntries(vllm.map((f) => [f.name, f.type]))).toEqual(VLLM_FAMILIES);
    for (const f of vllm) {
      expect(f.help, f.name).not.toBe("");
      if (f.name === "vllm:lora_requests_info") continue;
      for (const sample of f.samples) expect(sample.labels.model_name, sample.name).toBe("demo-llama");
    }
    for (const [name, bounds] of Object.entries(VLLM_BUCKETS)) {
      const h = s.histogram(name);
      expect(h.buckets.map((b) => b.le)).toEqual([...bounds, Number.POSITIVE_INFINITY]);
      expect(h).toMatchObject({ count: 0, sum: 0 });
    }
    // bounds written as vLLM's Python client writes them, so a selector such as le="1.0" matches
    const les = (s.families.get("vllm:e2e_request_latency_seconds") as PromFamily).samples
      .filter((x) => x.name.endsWith("_bucket"))
      .map((x) => x.labels.le);
    expect(les.slice(0, 4)).toEqual(["0.3", "0.5", "0.8", "1.0"]);
    expect(les.slice(-2)).toEqual(["7680.0", "+Inf"]);
    for (const reason of ["stop", "length", "abort"]) expect(success(s, reason)).toBe(0);
    expect(s.value("vllm:prompt_tokens_total")).toBe(0);
    expect(s.value("vllm:generation_tokens_total")).toBe(0);
    expect(s.value("vllm:num_requests_running")).toBe(0);
    expect(s.value("vllm:num_requests_waiting")).toBe(0);
    expect(s.value("vllm:kv_cache_usage_perc")).toBe(0);
    const lora = s.lora();
    expect(lora.labels).toEqual({ running_lora_adapters: "", waiting_lora_adapters: "", max_lora: "4" });
    // vLLM sets this gauge to the current time
    expect(lora.value).toBeGreaterThanOrEqual(s.at[0] - 0.001);
    expect(lora.value).toBeLessThanOrEqual(s.at[1] + 0.001);
  });

  it("counts finished requests by reason, tokens and latencies as the responses report them", async () => {
    const start = await scrape();
    let sequences = 0;
    let promptTokens = 0;
    let completionTokens = 0;
    const reasons: Record<string, number> = { stop: 0, length: 0 };
    const send = async (path: string, body: Record<string, unknown>) => {
      const res = await t.post(path, body);
      expect(res.status).toBe(200);
      let choices: { finish_reason: string | null }[];
      let usage: { prompt_tokens: number; completion_tokens: number };
      let text = "";
      if (body.stream) {
        const chunks = sseData(await res.text())
          .slice(0, -1)
          .map((d) => JSON.parse(d) as { choices: { finish_reason: string | null }[]; usage: typeof usage });
        choices = chunks.flatMap((c) => c.choices).filter((c) => c.finish_reason !== null);
        usage = chunks.at(-1)?.usage as typeof usage;
      } else {
        const json = await res.json();
        const out =
          path === "/v1/chat/completions" ? ChatCompletionSchema.parse(json) : CompletionSchema.parse(json);
        choices = out.choices;
        usage = out.usage;
        text = "text" in (out.choices[0] ?? {}) ? ((out.choices[0] as { text: string }).text ?? "") : "";
      }
      for (const choice of choices) {
        const reason = choice.finish_reason as string;
        reasons[reason] = (reasons[reason] ?? 0) + 1;
        sequences++;
      }
      promptTokens += usage.prompt_tokens;
      completionTokens += usage.completion_tokens;
      return text;
    };
    const greedy = { model: "demo-llama", prompt: "Hello", max_tokens: 8, temperature: 0 };
    const probeText = await send("/v1/completions", greedy);
    expect(probeText.length).toBeGreaterThanOrEqual(3);
    // a stop string taken from that greedy completion ends the same completion with finish_reason "stop"
    await send("/v1/completions", { ...greedy, stop: probeText.slice(1, 3) });
    await send("/v1/completions", { model: "support", prompt: ["Hi", "There"], max_tokens: 3 });
    await send("/v1/chat/completions", {
      model: "sql",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 5,
    });
    await send("/v1/completions", {
      model: "support",
      prompt: "A",
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(reasons.stop).toBeGreaterThanOrEqual(1);
    expect(sequences).toBe(6);

    const end = await scrape();
    const delta = (read: (s: Scrape) => number) => read(end) - read(start);
    expect(delta((s) => success(s, "stop"))).toBe(reasons.stop);
    expect(delta((s) => success(s, "length"))).toBe(reasons.length);
    expect(delta((s) => success(s, "abort"))).toBe(0);
    expect(delta((s) => s.value("vllm:prompt_tokens_total"))).toBe(promptTokens);
    expect(delta((s) => s.value("vllm:generation_tokens_total"))).toBe(completionTokens);
    // the same tokens as the runner's own counters, which split them by adapter
    const ours = (s: Scrape, name: string) =>
      (s.families.get(name) as PromFamily).samples.reduce((sum, x) => sum + x.value, 0);
    expect(end.value("vllm:generation_tokens_total")).toBe(ours(end, "runner_generated_tokens_total"));
    expect(end.value("vllm:prompt_tokens_total")).toBe(ours(end, "runner_prompt_tokens_total"));

    const ttft = end.histogram("vllm:time_to_first_token_seconds");
    const itl = end.histogram("vllm:inter_token_latency_seconds");
    const e2e = end.histogram("vllm:e2e_request_latency_seconds");
    // one first token and one end per sequence; every later token is one inter-token gap
    expect(ttft.count - start.histogram("vllm:time_to_first_token_seconds").count).toBe(sequences);
    expect(e2e.count - start.histogram("vllm:e2e_request_latency_seconds").count).toBe(sequences);
    expect(itl.count - start.histogram("vllm:inter_token_latency_seconds").count).toBe(
      completionTokens - sequences,
    );
    expect(e2e.count).toBe(["stop", "length", "abort"].reduce((sum, r) => sum + success(end, r), 0));
    // each request's first token and its gaps lie within its whole latency
    expect(ttft.sum).toBeGreaterThan(0);
    expect(itl.sum).toBeGreaterThan(0);
    expect(ttft.sum).toBeLessThanOrEqual(e2e.sum);
    expect(itl.sum).toBeLessThanOrEqual(e2e.sum);
    expect(ttft.sum + itl.sum).toBeLessThanOrEqual(e2e.sum + 1e-9);

    expect(end.value("vllm:num_requests_running")).toBe(0);
    expect(end.value("vllm:num_requests_waiting")).toBe(0);
    expect(end.value("vllm:kv_cache_usage_perc")).toBe(0);
  });

  it("shows running and waiting requests with their adapters and KV use, then counts their aborts", async () => {
    const start = await scrape();
    const long = { prompt: "The", max_tokens: 1500, temperature: 0 };
    const streaming = new AbortController();
    const waiting = new AbortController();
    const { scheduler } = t.runner.deps;
    const first = await t.post(
      "/v1/completions",
      { ...long, model: "support", stream: true },
      { signal: streaming.signal },
    );
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    const second = t.post("/v1/completions", { ...long, model: "sql" }, { signal: waiting.signal });
    await until(() => scheduler.snapshot().waiting === 1, "the second request to wait");

    const busy = await scrape();
    expect(busy.value("vllm:num_requests_running")).toBe(1);
    expect(busy.value("vllm:num_requests_waiting")).toBe(1);
    expect(busy.lora().labels).toEqual({
      running_lora_adapters: "support",
      waiting_lora_adapters: "sql",
      max_lora: "4",
    });
    // the running row holds its prompt and most of its tokens so far, out of 1 row x 2048 positions
    const kv = busy.value("vllm:kv_cache_usage_perc");
    const promptLen = t.runner.deps.tokenizer.encode("The").length;
    expect(kv).toBeGreaterThanOrEqual(promptLen / (1 * t.runner.deps.engine.info.maxPositions));
    expect(kv).toBeLessThan(1);

    streaming.abort();
    await reader.cancel().catch(() => {});
    waiting.abort();
    await Promise.allSettled([second]);
    await until(() => {
      const s = scheduler.snapshot();
      return s.running === 0 && s.waiting === 0;
    }, "both requests to leave");
    await until(() => scheduler.runningCount === 0, "the aborted rows to be reaped");

    const end = await scrape();
    expect(success(end, "abort") - success(start, "abort")).toBe(2);
    for (const r of ["stop", "length"]) expect(success(end, r)).toBe(success(start, r));
    const count = (s: Scrape, name: string) => s.histogram(name).count;
    expect(
      count(end, "vllm:e2e_request_latency_seconds") - count(start, "vllm:e2e_request_latency_seconds"),
    ).toBe(2);
    // only the running one had produced a token; the waiting one never started
    expect(
      count(end, "vllm:time_to_first_token_seconds") - count(start, "vllm:time_to_first_token_seconds"),
    ).toBe(1);
    const generated = end.value("vllm:generation_tokens_total") - start.value("vllm:generation_tokens_total");
    expect(generated).toBeGreaterThanOrEqual(1);
    expect(generated).toBeLessThan(1500);
    expect(
      count(end, "vllm:inter_token_latency_seconds") - count(start, "vllm:inter_token_latency_seconds"),
    ).toBe(generated - 1);
    expect(end.value("vllm:num_requests_running")).toBe(0);
    expect(end.value("vllm:num_requests_waiting")).toBe(0);
    expect(end.value("vllm:kv_cache_usage_perc")).toBe(0);
    expect(end.lora().labels).toEqual({
      running_lora_adapters: "",
      waiting_lora_adapters: "",
      max_lora: "4",
    });
  });
});
