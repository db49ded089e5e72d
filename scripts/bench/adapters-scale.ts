// `npm run bench:adapters -- [--adapters 8,100,1000] [--slots 8] [--requests 192] [--concurrency 32]`
// Many adapters on one runner, measured as S-LoRA measures it: the same load (requests, prompt and output
// lengths) spread with Zipf popularity (alpha = 1) over N distinct adapters, every adapter in the host-memory
// tier and `--slots` of them in GPU slots at a time; generated tokens/s and p95 TTFT per N, and the ratio to
// the handful case (the smallest N). Then the cost of a slot refill from host memory against the cold path
// (409, then the upload: hash, parse, validate, decode, slot write), one request at a time on an idle runner.
// Runs the real runner (buildRunner + its HTTP app, in process) on a seeded synthetic model in token-ids mode.
import { mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import { createApp } from "../../gpu-runner/serving/http/app.ts";
import { buildRunner, type Runner } from "../../gpu-runner/serving/runtime.ts";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { adapterId, validateAdapter } from "../../src/adapters/validate.ts";
import { type BaseModelSpec, baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { encodeAdapterConfigHeader } from "../../src/contracts/runner.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { createRng } from "../../src/random.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { percentile, zipfSampler } from "./runner-adapters.ts";
import { type SyntheticModelOptions, writeSyntheticAdapter, writeSyntheticModel } from "./synthetic-model.ts";

/** Small enough for a 2-core CPU, with 1000 adapters of r=16 on q, k, v, o taking ~0.5 GB of host memory. */
const SHAPE: SyntheticModelOptions = {
  architecture: "llama",
  hiddenSize: 256,
  intermediateSize: 688,
  numLayers: 4,
  numHeads: 4,
  numKvHeads: 2,
  vocabSize: 2048,
  maxPositions: 512,
  std: 0.02,
  seed: 7,
};
const LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"];

interface Upload {
  id: string;
  sha: string;
  configHeader: string;
  weights: Uint8Array;
}

type App = ReturnType<typeof createApp>;

const median = (values: number[]) => percentile(values, 50);

/** The edge's copies of the adapters: PEFT files written by the synthetic writer, their content ids as the edge computes them. */
async function writeAdapters(dir: string, count: number, spec: BaseModelSpec): Promise<Upload[]> {
  const out: Upload[] = [];
  for (let k = 0; k < count; k++) {
    const adapterDir = join(dir, `a${k}`);
    writeSyntheticAdapter(adapterDir, SHAPE, {
      seed: 5000 + k,
      r: 16,
      alpha: 32,
      targetModules: LORA_MODULES,
      std: 0.02,
    });
    const config = JSON.parse(await readFile(join(adapterDir, PEFT_CONFIG_FILE), "utf8"));
    const weights = new Uint8Array(await readFile(join(adapterDir, PEFT_WEIGHTS_FILE)));
    rmSync(adapterDir, { recursive: true, force: true });
    const sha = await sha256Hex(weights);
    const id = await adapterId(sha, validateAdapter({ config, header: readSafetensors(weights), spec }));
    out.push({ id, sha, configHeader: encodeAdapterConfigHeader(config), weights });
  }
  return out;
}

/** The edge's upload: PUT /v1/adapters/{id}, body = the safetensors bytes. */
async function put(app: App, u: Upload): Promise<void> {
  const res = await app.request(`/v1/adapters/${u.id}`, {
    method: "PUT",
    headers: { "x-adapter-config": u.configHeader, "x-weights-sha256": u.sha },
    body: u.weights,
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`upload: ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

interface Sample {
  ttftMs: number;
  tokens: number;
}

/** One streamed completion; its time to the first token and the tokens it produced. */
async function complete(app: App, model: string, prompt: number[], maxTokens: number): Promise<Sample> {
  const started = performance.now();
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
  if (res.status !== 200) throw new Error(`completion for ${model}: ${res.status} ${await res.text()}`);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let ttftMs = -1;
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (ttftMs < 0 && text.includes('"text"')) ttftMs = performance.now() - started;
  }
  if (text.includes('"error"')) throw new Error(`completion for ${model} failed: ${text.slice(0, 300)}`);
  return { ttftMs, tokens: maxTokens };
}

interface Settings {
  slots: number;
  requests: number;
  concurrency: number;
  promptTokens: number;
  maxTokens: number;
  threads: number;
}

async function startRunner(
  model: string,
  s: Settings,
  hostAdapters: number,
): Promise<{ runner: Runner; app: App }> {
  const runner = await buildRunner(
    {
      model,
      loras: [],
      device: "cpu",
      backend: "native",
      maxLoras: s.slots,
      maxLoraRank: 16,
      maxBatch: s.concurrency,
      maxQueue: s.requests,
      threads: s.threads,
      runnerToken: null,
      maxCpuLoras: Math.max(s.slots, hostAdapters),
      adapterCacheBytes: 8 * 1024 ** 3,
    },
    createEngine,
  );
  return { runner, app: createApp(runner.deps) };
}

async function throughput(app: App, ids: string[], s: Settings) {
  const next = zipfSampler(ids.length, 11);
  const rng = createRng(12);
  const plan = Array.from({ length: s.requests }, () => ({
    model: ids[next()] as string,
    prompt: Array.from(
      { length: s.promptTokens },
      () => 3 + Math.floor(rng.nextFloat() * (SHAPE.vocabSize - 3)),
    ),
  }));
  const samples: Sample[] = [];
  let cursor = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: s.concurrency }, async () => {
      while (cursor < plan.length) {
        const p = plan[cursor++] as (typeof plan)[number];
        samples.push(await complete(app, p.model, p.prompt, s.maxTokens));
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    tps: samples.reduce((sum, x) => sum + x.tokens, 0) / seconds,
    p95: percentile(
      samples.map((x) => x.ttftMs),
      95,
    ),
    distinct: new Set(plan.map((p) => p.model)).size,
  };
}

function metric(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

/** Warm (in a slot), refill (host memory only) and cold (409 + upload) first tokens, one request at a time. */
async function refillVsCold(model: string, uploads: Upload[], s: Settings) {
  const k = Math.min(20, Math.floor((uploads.length - s.slots) / 2));
  const { runner, app } = await startRunner(model, s, uploads.length);
  try {
    const hosted = uploads.slice(0, s.slots + k);
    for (const u of hosted) await put(app, u);
    const prompt = Array.from({ length: s.promptTokens }, (_, i) => 3 + i);
    const warm: number[] = [];
    const refill: number[] = [];
    const cold: number[] = [];
    const coldParts = { notLoaded: [] as number[], upload: [] as number[] };
    for (let i = 0; i < k; i++) {
      const inSlot = runner.deps.adapters.list()[0]?.adapterId as string;
      warm.push((await complete(app, inSlot, prompt, 1)).ttftMs);
      const hostOnly = runner.deps.adapters.host().data.find((a) => a.slot === null)?.adapterId as string;
      refill.push((await complete(app, hostOnly, prompt, 1)).ttftMs);
      const u = uploads[s.slots + k + i] as Upload;
      const started = performance.now();
      const miss = await app.request("/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: u.id, prompt, max_tokens: 1 }),
      });
      if (miss.status !== 409) throw new Error(`cold adapter: expected 409; got ${miss.status}`);
      await miss.body?.cancel();
      const missed = performance.now();
      await put(app, u);
      const uploaded = performance.now();
      const first = await complete(app, u.id, prompt, 1);
      cold.push(uploaded - started + first.ttftMs);
      coldParts.notLoaded.push(missed - started);
      coldParts.upload.push(uploaded - missed);
    }
    const text = runner.deps.metrics.render();
    const writes = metric(text, "runner_adapter_slot_write_seconds_count");
    const writeMs = (metric(text, "runner_adapter_slot_write_seconds_sum") / Math.max(1, writes)) * 1000;
    return {
      k,
      warm: median(warm),
      refill: median(refill),
      cold: median(cold),
      notLoaded: median(coldParts.notLoaded),
      upload: median(coldParts.upload),
      writeMs,
    };
  } finally {
    await runner.close();
  }
}

const command = defineCommand({
  meta: {
    name: "bench:adapters",
    description: "Throughput with many adapters behind the slots (S-LoRA's measure)",
  },
  args: {
    adapters: {
      type: "string",
      default: "8,100,1000",
      description: "distinct adapter counts, comma-separated",
    },
    slots: { type: "string", default: "8", description: "GPU slots (--max-loras)" },
    requests: { type: "string", default: "192", description: "requests per adapter count (the same load)" },
    concurrency: { type: "string", default: "32", description: "requests in flight (and --max-batch)" },
    prompt: { type: "string", default: "16", description: "prompt tokens" },
    tokens: { type: "string", default: "16", description: "generated tokens per request" },
    threads: { type: "string", default: "2", description: "onnxruntime threads" },
    repeats: { type: "string", default: "3", description: "measured runs per N (median reported)" },
  },
  async run({ args }) {
    const int = (name: string, raw: string) => {
      if (!/^\d+$/.test(raw) || Number(raw) < 1)
        throw new Error(`--${name} must be an integer >= 1; got "${raw}"`);
      return Number(raw);
    };
    const counts = args.adapters.split(",").map((c) => int("adapters", c.trim()));
    const s: Settings = {
      slots: int("slots", args.slots),
      requests: int("requests", args.requests),
      concurrency: int("concurrency", args.concurrency),
      promptTokens: int("prompt", args.prompt),
      maxTokens: int("tokens", args.tokens),
      threads: int("threads", args.threads),
    };
    const repeats = int("repeats", args.repeats);
    const root = mkdtempSync(join(tmpdir(), "lora-edge-adapters-scale-"));
    try {
      const model = join(root, "model");
      writeSyntheticModel(model, SHAPE);
      const most = Math.max(...counts, s.slots * 2 + 40);
      console.log(`writing ${most} adapters (r=16, q,k,v,o) ...`);
      const spec = await baseModelSpecFromConfig(
        "synthetic",
        JSON.parse(await readFile(join(model, "config.json"), "utf8")),
      );
      const uploads = await writeAdapters(join(root, "adapters"), most, spec);
      // one runner per N, all up at once, measured round-robin (median of the repeats after a warm-up each)
      // so that load from other processes on a shared machine falls on every N alike
      const setups = [];
      for (const n of counts) {
        const { runner, app } = await startRunner(model, s, n);
        const loadStart = performance.now();
        for (const u of uploads.slice(0, n)) await put(app, u);
        const loadS = (performance.now() - loadStart) / 1000;
        const ids = uploads.slice(0, n).map((u) => u.id);
        await throughput(app, ids, s);
        setups.push({ n, runner, app, ids, loadS, runs: [] as Awaited<ReturnType<typeof throughput>>[] });
      }
      const rows: string[] = [];
      try {
        for (let r = 0; r < repeats; r++) {
          for (const x of setups) {
            const run = await throughput(x.app, x.ids, s);
            x.runs.push(run);
            console.log(
              `  N=${x.n}, run ${r + 1}: ${run.tps.toFixed(1)} tokens/s, p95 TTFT ${run.p95.toFixed(0)} ms`,
            );
          }
        }
        const handful = median((setups[0]?.runs ?? []).map((x) => x.tps));
        for (const x of setups) {
          const tps = median(x.runs.map((r) => r.tps));
          const m = x.runner.deps.metrics.render();
          const host = x.runner.deps.adapters.host();
          const perRun = (name: string) => (metric(m, name) / (repeats + 1)).toFixed(0);
          rows.push(
            `| ${x.n} | ${x.runs[0]?.distinct} | ${tps.toFixed(1)} | ${(tps / handful).toFixed(2)} | ${median(x.runs.map((r) => r.p95)).toFixed(0)} | ${perRun('runner_adapter_slot_writes_total{source="host"}')} | ${perRun("runner_adapter_slot_waits_total")} | ${(host.usedBytes / 1024 ** 2).toFixed(0)} | ${x.loadS.toFixed(1)} |`,
          );
        }
      } finally {
        for (const x of setups) await x.runner.close();
      }
      const refill = await refillVsCold(model, uploads, s);
      const machine = `${cpus().length}-core ${cpus()[0]?.model.trim() ?? "CPU"}, ${s.threads} onnxruntime threads`;
      console.log(
        `\n${machine}; ${s.slots} slots, ${s.requests} requests, ${s.concurrency} concurrent, prompt ${s.promptTokens}, ${s.maxTokens} new tokens each\n`,
      );
      console.log(
        "| distinct adapters N | used by the load | tokens/s | × smallest N | p95 TTFT ms | slot refills from host per run | requests that waited for a slot per run | host tier MiB | loading all N s |",
      );
      console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
      for (const r of rows) console.log(r);
      console.log(
        `\nfirst token, one request at a time (median of ${refill.k}): in a slot ${refill.warm.toFixed(1)} ms; refilled from host memory ${refill.refill.toFixed(1)} ms; cold ${refill.cold.toFixed(1)} ms (409 ${refill.notLoaded.toFixed(1)} ms + upload ${refill.upload.toFixed(1)} ms + first token); one slot write ${refill.writeMs.toFixed(2)} ms (mean)`,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
});

void runMain(command);
