// `npm run bench:runner -- --adapters 8,64,512,2000`: thousands of adapters on one runner, measured as S-LoRA
// measures it. The same load (requests, prompt and output lengths) for each N, each request's adapter drawn
// with Zipf popularity (alpha = 1, seeded) from N distinct adapters (r=16 on q, k, v, o); the runner is the
// real one (buildRunner and its HTTP app, in process, streaming, token-ids mode) on the bench's synthetic
// model, on the CPU or WebGPU. The client acts as the edge: a 409 adapter_not_loaded is answered with the
// PUT upload and one retry. Then, one request at a time, where the first token of an adapter in a slot, of
// one refilled from host memory, and of one in neither tier spends its time.
//
// Adapters are variants of a few seeded PEFT files (one F32 value rewritten per variant), so each has its
// own content id and bytes while 2,000 of them cost no more to make than a handful.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import type { AdapterWeights, Backend, Device, Engine, StepRow } from "../../gpu-runner/engine/types.ts";
import { createApp } from "../../gpu-runner/serving/http/app.ts";
import { buildRunner, type EngineFactory, type Runner } from "../../gpu-runner/serving/runtime.ts";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { adapterId, type ValidatedAdapter, validateAdapter } from "../../src/adapters/validate.ts";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { encodeAdapterConfigHeader } from "../../src/contracts/runner.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { createRng } from "../../src/random.ts";
import { readSafetensors } from "../../src/safetensors.ts";

/** S-LoRA's published figure, quoted as the anchor (not measured here). */
export const S_LORA_ANCHOR =
  "S-LoRA (Sheng et al. 2023) reports serving ~2,000 adapters on one A100 at roughly 0.9–0.95× the throughput of serving a few (published figure, not measured here)";

export interface AdapterBenchSettings {
  modelDir: string;
  /** PEFT folders the variants are made from (the bench's seeded adapters). */
  familyDirs: string[];
  counts: number[];
  device: Device;
  backend: Backend;
  threads: number;
  slots: number;
  /** Requests in flight, and the runner's --max-batch. */
  batch: number;
  requests: number;
  promptTokens: number;
  newTokens: number;
  repeats: number;
  maxCpuLoras: number | null;
  adapterCacheBytes: number;
  /** Requests per kind in the one-at-a-time breakdown. */
  probes: number;
}

interface Family {
  config: unknown;
  configHeader: string;
  bytes: Uint8Array;
  validated: ValidatedAdapter;
  /** Where the first tensor's data starts: the F32 value each variant rewrites. */
  dataOffset: number;
}

interface Upload {
  id: string;
  sha: string;
  configHeader: string;
  weights: Uint8Array;
}

/** Adapter k of the universe: family k mod F with its first value set from k, so every k is distinct content. */
class AdapterVariants {
  private readonly known = new Map<number, { id: string; sha: string }>();

  private readonly families: Family[];

  private constructor(families: Family[]) {
    this.families = families;
  }

  static async create(dirs: string[], modelDir: string): Promise<AdapterVariants> {
    const spec = await baseModelSpecFromConfig(
      "bench",
      JSON.parse(readFileSync(join(modelDir, "config.json"), "utf8")),
    );
    const families = dirs.map((dir) => {
      const config = JSON.parse(readFileSync(join(dir, PEFT_CONFIG_FILE), "utf8"));
      const bytes = new Uint8Array(readFileSync(join(dir, PEFT_WEIGHTS_FILE)));
      const header = readSafetensors(bytes);
      const validated = validateAdapter({ config, header, spec });
      return {
        config,
        configHeader: encodeAdapterConfigHeader(config),
        bytes,
        validated,
        dataOffset: header.dataOffset,
      };
    });
    return new AdapterVariants(families);
  }

  /** The variant's bytes (made again each time, so the bench holds only the families). */
  private bytes(k: number): { family: Family; weights: Uint8Array } {
    const family = this.families[k % this.families.length] as Family;
    const weights = family.bytes.slice();
    new DataView(weights.buffer).setFloat32(family.dataOffset, (k + 1) * 1e-6, true);
    return { family, weights };
  }

  async upload(k: number): Promise<Upload> {
    const { family, weights } = this.bytes(k);
    let ids = this.known.get(k);
    if (ids === undefined) {
      const sha = await sha256Hex(weights);
      ids = { id: await adapterId(sha, family.validated), sha };
      this.known.set(k, ids);
    }
    return { ...ids, configHeader: family.configHeader, weights };
  }

  /** Every variant made so far: index and content id. */
  made(): [number, string][] {
    return [...this.known].map(([k, ids]) => [k, ids.id]);
  }

  async id(k: number): Promise<string> {
    return this.known.get(k)?.id ?? (await this.upload(k)).id;
  }
}

/** Zipf(alpha = 1) over 0..n-1: rank k has weight 1/(k+1). */
export function zipfSampler(n: number, seed: number): () => number {
  const cdf: number[] = [];
  let sum = 0;
  for (let k = 1; k <= n; k++) {
    sum += 1 / k;
    cdf.push(sum);
  }
  const rng = createRng(seed);
  return () => {
    const u = rng.nextFloat() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const median = (values: number[]) => percentile(values, 50);

/** What the engine did, as seen through the factory's wrapper: step and slot-write times, in order. */
interface EngineLog {
  steps: { ms: number; rows: number }[];
  slotWrites: number[];
}

/** The runner's own engine, with its steps and slot writes timed (nothing else changes). */
function timedEngines(log: EngineLog): EngineFactory {
  return async (options) => {
    const engine = await createEngine(options);
    const step = async (rows: StepRow[]) => {
      const started = performance.now();
      try {
        return await engine.step(rows);
      } finally {
        log.steps.push({ ms: performance.now() - started, rows: rows.length });
      }
    };
    const setSlot = (slot: number, adapter: AdapterWeights | null) => {
      const started = performance.now();
      engine.setSlot(slot, adapter);
      log.slotWrites.push(performance.now() - started);
    };
    return new Proxy(engine, {
      get(target, prop) {
        if (prop === "step") return step;
        if (prop === "setSlot") return setSlot;
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as Engine;
  };
}

type App = ReturnType<typeof createApp>;

async function put(app: App, u: Upload): Promise<void> {
  const res = await app.request(`/v1/adapters/${u.id}`, {
    method: "PUT",
    headers: { "x-adapter-config": u.configHeader, "x-weights-sha256": u.sha },
    body: u.weights,
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`upload: ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

/** One streamed completion; null when the runner answered 409 adapter_not_loaded. */
async function stream(
  app: App,
  model: string,
  prompt: number[],
  maxTokens: number,
): Promise<{ firstTokenAt: number } | null> {
  const res = await app.request("/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model,
      prompt,
      max_tokens: maxTokens,
      temperature: 0,
      ignore_eos: true,
      stream: true,
    }),
  });
  if (res.status === 409) {
    await res.body?.cancel();
    return null;
  }
  if (res.status !== 200) throw new Error(`completion for ${model}: ${res.status} ${await res.text()}`);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let firstTokenAt = -1;
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (firstTokenAt < 0 && text.includes('"text"')) firstTokenAt = performance.now();
  }
  if (text.includes('"error"')) throw new Error(`completion for ${model} failed: ${text.slice(0, 300)}`);
  return { firstTokenAt };
}

function metric(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

const COUNTERS = {
  refills: 'runner_adapter_slot_writes_total{source="host"}',
  placements: 'runner_adapter_slot_writes_total{source="load"}',
  waits: "runner_adapter_slot_waits_total",
  prepareSum: "runner_adapter_prepare_seconds_sum",
  prepareCount: "runner_adapter_prepare_seconds_count",
} as const;

type Counters = Record<keyof typeof COUNTERS, number>;

function counters(runner: Runner): Counters {
  const text = runner.deps.metrics.render();
  const out = {} as Counters;
  for (const [key, name] of Object.entries(COUNTERS)) out[key as keyof Counters] = metric(text, name);
  return out;
}

function delta(after: Counters, before: Counters): Counters {
  const out = {} as Counters;
  for (const key of Object.keys(COUNTERS) as (keyof Counters)[]) out[key] = after[key] - before[key];
  return out;
}

interface Plan {
  n: number;
  /** Adapter index per request. */
  picks: number[];
  prompts: number[][];
}

function makePlan(n: number, requests: number, promptTokens: number, vocab: number, seed: number): Plan {
  const next = zipfSampler(n, seed);
  const rng = createRng(seed + 1);
  return {
    n,
    picks: Array.from({ length: requests }, () => next()),
    prompts: Array.from({ length: requests }, () =>
      Array.from({ length: promptTokens }, () => 3 + Math.floor(rng.nextFloat() * (vocab - 3))),
    ),
  };
}

interface RunResult {
  tps: number;
  p95: number;
  requests: number;
  cold: number;
  counters: Counters;
}

/** The client as the edge: 409 → PUT (one upload per adapter at a time) → retry; TTFT from the first try. */
class EdgeClient {
  private readonly uploading = new Map<number, Promise<void>>();
  cold = 0;

  readonly app: App;
  private readonly variants: AdapterVariants;

  constructor(app: App, variants: AdapterVariants) {
    this.app = app;
    this.variants = variants;
  }

  async load(k: number): Promise<void> {
    let pending = this.uploading.get(k);
    if (pending === undefined) {
      pending = this.variants.upload(k).then((u) => put(this.app, u));
      this.uploading.set(k, pending);
      pending.finally(() => this.uploading.delete(k)).catch(() => {});
    }
    await pending;
  }

  async request(k: number, prompt: number[], maxTokens: number): Promise<number> {
    const started = performance.now();
    const model = await this.variants.id(k);
    let done = await stream(this.app, model, prompt, maxTokens);
    if (done === null) {
      this.cold++;
      await this.load(k);
      done = await stream(this.app, model, prompt, maxTokens);
      if (done === null) throw new Error(`adapter ${model}: still not loaded after its upload`);
    }
    return done.firstTokenAt - started;
  }
}

async function drive(runner: Runner, client: EdgeClient, plan: Plan, s: AdapterBenchSettings) {
  const before = counters(runner);
  const coldBefore = client.cold;
  const ttfts: number[] = [];
  let cursor = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: s.batch }, async () => {
      while (cursor < plan.picks.length) {
        const i = cursor++;
        ttfts.push(await client.request(plan.picks[i] as number, plan.prompts[i] as number[], s.newTokens));
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    tps: (plan.picks.length * s.newTokens) / seconds,
    p95: percentile(ttfts, 95),
    requests: plan.picks.length,
    cold: client.cold - coldBefore,
    counters: delta(counters(runner), before),
  } satisfies RunResult;
}

export interface AdapterBenchResult {
  lines: string[];
}

/** Runs every N on one runner, round-robin (a warm-up before each visit), then the one-at-a-time breakdown. */
export async function runAdapterBench(s: AdapterBenchSettings): Promise<AdapterBenchResult> {
  const log: EngineLog = { steps: [], slotWrites: [] };
  const variants = await AdapterVariants.create(s.familyDirs, s.modelDir);
  const vocab = JSON.parse(readFileSync(join(s.modelDir, "config.json"), "utf8")).vocab_size as number;
  const buildStart = performance.now();
  const runner = await buildRunner(
    {
      model: s.modelDir,
      loras: [],
      device: s.device,
      backend: s.backend,
      maxLoras: s.slots,
      maxLoraRank: 16,
      maxBatch: s.batch,
      maxQueue: Math.max(s.requests, s.batch),
      threads: s.threads,
      runnerToken: null,
      maxCpuLoras: s.maxCpuLoras,
      adapterCacheBytes: s.adapterCacheBytes,
    },
    timedEngines(log),
  );
  const buildMs = performance.now() - buildStart;
  const app = createApp(runner.deps);
  const client = new EdgeClient(app, variants);
  try {
    const plans = s.counts.map((n, i) => makePlan(n, s.requests, s.promptTokens, vocab, 11 + i));
    const warmups = s.counts.map((n, i) =>
      makePlan(n, Math.max(2 * s.batch, 16), s.promptTokens, vocab, 101 + i),
    );
    // Every adapter a load uses is uploaded before it is measured (S-LoRA's setting: the adapters are in host
    // memory); adapters of the universe that no request names are not made, as they would change no step.
    const loadStart = performance.now();
    const used = [...new Set(plans.flatMap((p) => p.picks))];
    for (const k of used) await client.load(k);
    const loadS = (performance.now() - loadStart) / 1000;
    const runs: RunResult[][] = plans.map(() => []);
    for (let r = 0; r < s.repeats; r++) {
      for (const [i, plan] of plans.entries()) {
        await drive(runner, client, warmups[i] as Plan, s);
        const run = await drive(runner, client, plan, s);
        runs[i]?.push(run);
        console.log(
          `  N=${plan.n}, run ${r + 1}: ${run.tps.toFixed(1)} tokens/s, p95 TTFT ${run.p95.toFixed(0)} ms, ${run.counters.refills} refills, ${run.cold} cold`,
        );
      }
    }
    const host = runner.deps.adapters.host();
    const rssMiB = process.memoryUsage().rss / 1024 ** 2;
    const lines = [
      `Engine build ${(buildMs / 1000).toFixed(1)} s; ${used.length} distinct adapters uploaded before measuring in ${loadS.toFixed(1)} s (PUT, as the edge does); host tier after the runs: ${host.data.length} adapters, ${(host.usedBytes / 1024 ** 2).toFixed(0)} MiB decoded; process RSS ${rssMiB.toFixed(0)} MiB.`,
      "",
      ...throughputTable(plans, runs, s),
      "",
      `Anchor: ${S_LORA_ANCHOR}.`,
      "",
      ...(await breakdown(runner, client, log, variants, s, vocab)),
    ];
    return { lines };
  } finally {
    await runner.close();
  }
}

function throughputTable(plans: Plan[], runs: RunResult[][], s: AdapterBenchSettings): string[] {
  const tpsOf = (i: number) => median((runs[i] ?? []).map((r) => r.tps));
  const handful = tpsOf(0);
  const lines = [
    `| distinct adapters N | used by the load | tokens/s | × N=${plans[0]?.n} | p95 TTFT ms | slot hits | host hits (slot refills) | cold loads (409 + upload) | waited for a slot |`,
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const [i, plan] of plans.entries()) {
    const rs = runs[i] ?? [];
    const mid = (f: (r: RunResult) => number) => median(rs.map(f));
    const refills = mid((r) => r.counters.refills);
    const cold = mid((r) => r.cold);
    lines.push(
      `| ${plan.n} | ${new Set(plan.picks).size} | ${tpsOf(i).toFixed(1)} | ${(tpsOf(i) / handful).toFixed(2)} | ${mid((r) => r.p95).toFixed(0)} | ${Math.max(0, s.requests - refills - cold)} | ${refills} | ${cold} | ${mid((r) => r.counters.waits)} |`,
    );
  }
  return lines;
}

/** Median of each field over the probes. */
function medians<T extends string>(rows: Record<T, number>[]): Record<T, number> {
  const out = {} as Record<T, number>;
  for (const key of Object.keys(rows[0] ?? {}) as T[]) out[key] = median(rows.map((r) => r[key]));
  return out;
}

/**
 * One request at a time on the now idle runner, max_tokens 1: the first token of an adapter in a slot, of
 * one in host memory only (the refill), and of one in neither tier (the cold path), each split into what the
 * engine did (slot write, prefill step) and the rest (HTTP, admission, the stream).
 */
async function breakdown(
  runner: Runner,
  client: EdgeClient,
  log: EngineLog,
  variants: AdapterVariants,
  s: AdapterBenchSettings,
  vocab: number,
): Promise<string[]> {
  const prompt = Array.from({ length: s.promptTokens }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
  const adapters = runner.deps.adapters;
  const byId = new Map<string, number>();
  const universe = Math.max(...s.counts);
  const marks = () => ({ steps: log.steps.length, writes: log.slotWrites.length, c: counters(runner) });
  const since = (m: ReturnType<typeof marks>) => ({
    prefillMs: log.steps.slice(m.steps).reduce((sum, x) => sum + x.ms, 0),
    writeMs: log.slotWrites.slice(m.writes).reduce((sum, x) => sum + x, 0),
    c: delta(counters(runner), m.c),
  });
  for (const [k, id] of variants.made()) byId.set(id, k);
  const warm: Record<string, number>[] = [];
  const refill: Record<string, number>[] = [];
  const cold: Record<string, number>[] = [];
  for (let i = 0; i < s.probes; i++) {
    const inSlot = adapters.list()[0]?.adapterId as string;
    let m = marks();
    const warmTtft = await client.request(byId.get(inSlot) as number, prompt, 1);
    const w = since(m);
    warm.push({
      ttft: warmTtft,
      write: w.writeMs,
      prefill: w.prefillMs,
      rest: warmTtft - w.writeMs - w.prefillMs,
    });
    const hostOnlyOne = () => adapters.host().data.find((a) => a.slot === null && byId.has(a.adapterId));
    if (hostOnlyOne() === undefined) {
      // every loaded adapter is in a slot: one more load takes an idle slot, leaving its adapter in host memory
      const extra = universe + s.probes + i;
      await client.load(extra);
      byId.set(await variants.id(extra), extra);
    }
    const hostOnly = hostOnlyOne();
    if (hostOnly === undefined) throw new Error("breakdown: no adapter is in host memory only");
    m = marks();
    const refillTtft = await client.request(byId.get(hostOnly.adapterId) as number, prompt, 1);
    const r = since(m);
    refill.push({
      ttft: refillTtft,
      write: r.writeMs,
      prefill: r.prefillMs,
      rest: refillTtft - r.writeMs - r.prefillMs,
    });
    // a variant no load used: in neither tier
    const k = universe + i;
    const u = await variants.upload(k);
    const t0 = performance.now();
    if ((await stream(client.app, u.id, prompt, 1)) !== null) throw new Error("cold adapter: expected 409");
    const t1 = performance.now();
    m = marks();
    await put(client.app, u);
    const t2 = performance.now();
    const up = since(m);
    m = marks();
    const first = await stream(client.app, u.id, prompt, 1);
    const after = since(m);
    if (first === null) throw new Error("cold adapter: 409 after its upload");
    const prepareMs = up.c.prepareSum * 1000;
    cold.push({
      ttft: first.firstTokenAt - t0,
      notLoaded: t1 - t0,
      upload: t2 - t1,
      prepare: prepareMs,
      write: up.writeMs + after.writeMs,
      hashAndBody: t2 - t1 - prepareMs - up.writeMs,
      request: first.firstTokenAt - t2,
      prefill: after.prefillMs,
    });
  }
  const [w, r, c] = [medians(warm), medians(refill), medians(cold)];
  const f = (x: number | undefined) => (x ?? Number.NaN).toFixed(1);
  return [
    `First token, one request at a time (max_tokens 1, ${s.promptTokens}-token prompt), median of ${s.probes}; times in ms:`,
    "",
    "| adapter | first token | slot write | prefill step | rest (HTTP, admission, stream) |",
    "| --- | ---: | ---: | ---: | ---: |",
    `| in a slot | ${f(w.ttft)} | ${f(w.write)} | ${f(w.prefill)} | ${f(w.rest)} |`,
    `| in host memory only (refill) | ${f(r.ttft)} | ${f(r.write)} | ${f(r.prefill)} | ${f(r.rest)} |`,
    `| in neither tier (cold) | ${f(c.ttft)} | ${f(c.write)} | ${f(c.prefill)} | see below |`,
    "",
    `Cold path: the 409 round trip ${f(c.notLoaded)} ms; the upload ${f(c.upload)} ms, of which parse + validate + decode ${f(c.prepare)} ms, slot write ${f(c.write)} ms, body read + sha256 + HTTP ${f(c.hashAndBody)} ms; then the request ${f(c.request)} ms (prefill step ${f(c.prefill)} ms).`,
  ];
}
