// `npm run bench:runner -- [--shape cpu|h200] [--device cpu|webgpu] [--backend native|wasm] [--threads N]`
// Generated tokens/s of the multi-LoRA engine, in one process, for base-only, one-adapter and mixed batches
// (every row a different adapter) on each LoRA path (dense, gather), beside a no-LoRA graph and a
// merge-and-swap baseline. Prints a table; `--write FILE` also puts it into that markdown file between this
// configuration's markers.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { createEngineFromModel } from "../../gpu-runner/engine/engine.ts";
import { type HfModel, loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import type { Precision } from "../../gpu-runner/engine/onnx/fused-decoder.ts";
import type { LoraPath } from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import type { WebGpuSettings } from "../../gpu-runner/engine/ort-backend.ts";
import type { AdapterWeights, Backend, Device, Engine } from "../../gpu-runner/engine/types.ts";
import { PEFT_CONFIG_FILE } from "../../src/adapters/peft-files.ts";
import { formatProfile, summariseProfile } from "./ort-profile.ts";
import { measureAll, type Row, type Scenario, table, writeSection } from "./runner-report.ts";
import { runAdapterBench } from "./runner-adapters.ts";
import { generate, mergeAndSwap, type Workload } from "./runner-scenarios.ts";
import { type SyntheticModelOptions, writeSyntheticAdapter, writeSyntheticModel } from "./synthetic-model.ts";

const SHAPES: Record<string, Omit<SyntheticModelOptions, "seed">> = {
  cpu: {
    architecture: "llama",
    hiddenSize: 512,
    intermediateSize: 1376,
    numLayers: 8,
    numHeads: 8,
    numKvHeads: 4,
    vocabSize: 4096,
    maxPositions: 2048,
    std: 0.02,
  },
  h200: {
    architecture: "llama",
    hiddenSize: 2048,
    intermediateSize: 5632,
    numLayers: 22,
    numHeads: 32,
    numKvHeads: 4,
    vocabSize: 32000,
    maxPositions: 2048,
    std: 0.02,
    dtype: "BF16",
    shards: 4,
  },
};
const LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"] as const;

interface EngineConfig {
  label: string;
  graph: "fused" | "primitive";
  precision?: Precision;
  quantize?: "int4";
  webgpu?: WebGpuSettings;
  splitK?: boolean;
}

const ENGINE_CONFIGS: Record<string, EngineConfig> = {
  primitive: { label: "primitive graph, float32", graph: "primitive" },
  fused32: { label: "fused graph, float32", graph: "fused", precision: "float32" },
  fused16: { label: "fused graph, float16", graph: "fused", precision: "float16" },
  int4: { label: "fused graph, float16, int4 base", graph: "fused", precision: "float16", quantize: "int4" },
  // WebGPU provider settings, measured against fused16 (docs/decisions/0006-fused-webgpu-decoder.md).
  "fused16-novalidate": {
    label: "fused graph, float16, Dawn validation off",
    graph: "fused",
    precision: "float16",
    webgpu: { validation: "disabled" },
  },
  "fused16-nosplit": {
    label: "fused graph, float16, no split-K",
    graph: "fused",
    precision: "float16",
    splitK: false,
  },
};

/** The engine options a configuration stands for, with `lanes` rows per step on the fused graph. */
function graphOptionsOf(config: EngineConfig, lanes: number) {
  return config.graph === "fused"
    ? {
        graph: "fused" as const,
        precision: config.precision,
        lanes,
        ...(config.quantize ? { quantize: config.quantize } : {}),
        ...(config.webgpu ? { webgpu: config.webgpu } : {}),
        ...(config.splitK !== undefined ? { splitK: config.splitK } : {}),
      }
    : { graph: "primitive" as const };
}

function ensureModel(dir: string, shape: SyntheticModelOptions, adapters: number): void {
  if (!existsSync(join(dir, "config.json"))) writeSyntheticModel(dir, shape);
  for (let k = 0; k < adapters; k++) {
    const adapterDir = join(dir, "adapters", `a${k}`);
    if (existsSync(join(adapterDir, PEFT_CONFIG_FILE))) continue;
    writeSyntheticAdapter(adapterDir, shape, {
      seed: 1000 + k,
      r: 16,
      alpha: 32,
      targetModules: [...LORA_MODULES],
      std: 0.02,
    });
  }
}

interface EngineChoice {
  device: Device;
  backend: Backend;
  threads: number;
  hostFeeds: boolean;
  maxSlots: number;
  loraPath: LoraPath;
  graph: "fused" | "primitive";
  precision?: Precision;
  lanes?: number;
  quantize?: "int4";
  webgpu?: WebGpuSettings;
  splitK?: boolean;
}

async function profileMixed(
  model: HfModel,
  o: EngineChoice,
  adapters: number,
  w: Workload,
  keepIn?: string,
): Promise<string> {
  const prefix = join(tmpdir(), `lora-edge-profile-${process.pid}`);
  const engine = await createEngineFromModel(model, {
    ...o,
    maxRank: 16,
    loraModules: LORA_MODULES,
    profile: prefix,
  });
  await generate(
    engine,
    Array.from({ length: w.batch }, (_, i) => 1 + (i % adapters)),
    w,
  );
  await engine.dispose();
  const dir = tmpdir();
  const file = readdirSync(dir).find(
    (f) => f.startsWith(`lora-edge-profile-${process.pid}`) && f.endsWith(".json"),
  );
  if (!file) return "(no profile written)";
  const summary = formatProfile(summariseProfile(join(dir, file)));
  if (keepIn) copyFileSync(join(dir, file), join(keepIn, file));
  rmSync(join(dir, file));
  return summary;
}

const command = defineCommand({
  meta: {
    name: "bench:runner",
    description: "Multi-LoRA engine throughput against a merge-and-swap baseline",
  },
  args: {
    shape: {
      type: "string",
      default: "cpu",
      description: "cpu (hidden 512, 8 layers) or h200 (llama-1.1B shape)",
    },
    device: { type: "string", default: "cpu" },
    backend: { type: "string", default: "native" },
    threads: { type: "string", default: "2" },
    batch: { type: "string", description: "rows per batch (default 8 on cpu, 32 on h200)" },
    slots: { type: "string", description: "adapter slots of the multi-LoRA engines (default: batch)" },
    loraPath: {
      type: "string",
      default: "both",
      description: "dense, gather or both (each path its own engine, measured side by side)",
    },
    prompt: { type: "string", default: "64" },
    new: { type: "string", default: "32" },
    repeats: { type: "string", default: "3" },
    modelDir: {
      type: "string",
      description: "where the generated model is cached (default .data/bench/<shape>)",
    },
    write: { type: "string", description: "markdown file to write the table into (e.g. BENCHMARKS.md)" },
    profile: {
      type: "boolean",
      default: false,
      description: "always profile the mixed batch (else only when mixed < 0.9 × base)",
    },
    profileDir: { type: "string", description: "with --profile: a folder to keep the raw traces in" },
    profileEngines: {
      type: "string",
      description: "with --profile: which engines to profile (default: all measured)",
    },
    skipSwap: { type: "boolean", default: false, description: "skip the merge-and-swap baseline" },
    engines: {
      type: "string",
      description: `comma-separated engines to measure: ${Object.keys(ENGINE_CONFIGS).join(", ")} (default: primitive,fused16,int4 on webgpu, where the fused graph is the runner's default; primitive on cpu: docs/decisions/0006-fused-webgpu-decoder.md)`,
    },
    peers: {
      type: "string",
      description:
        "comma-separated peers measured in the same run, after our engines: torch (scripts/bench/torch_decoder.py, eager and CUDA graph), peft (scripts/bench/peft_generate.py)",
    },
    peerRepeats: { type: "string", default: "3", description: "runs per peer scenario (median)" },
    hostFeeds: {
      type: "boolean",
      default: false,
      description: "feed LoRA stacks and KV from host memory every step",
    },
    adapters: {
      type: "string",
      description:
        "distinct adapter counts N (e.g. 8,64,512,2000): instead of the engine scenarios, the real runner under the same load for each N, adapters drawn with Zipf popularity (scripts/bench/runner-adapters.ts)",
    },
    requests: {
      type: "string",
      description: "with --adapters: requests per N (default 16 × batch), --batch of them in flight",
    },
    maxCpuLoras: {
      type: "string",
      description: "with --adapters: the runner's --max-cpu-loras (default: no count bound)",
    },
    adapterCacheBytes: {
      type: "string",
      default: String(16 * 1024 ** 3),
      description: "with --adapters: the runner's --adapter-cache-bytes",
    },
    probes: {
      type: "string",
      default: "10",
      description: "with --adapters: requests per kind in the one-at-a-time first-token breakdown",
    },
  },
  async run({ args }) {
    const shape = SHAPES[args.shape];
    if (!shape)
      throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(", ")}; got "${args.shape}"`);
    if (args.adapters !== undefined) return await adaptersMode(args, shape);
    const onlyWithAdapters = ["requests", "maxCpuLoras", "adapterCacheBytes", "probes"];
    const stray = onlyWithAdapters.filter((f) => flagGiven(f));
    if (stray.length > 0) throw new Error(`--${stray[0]}: only with --adapters`);
    const device = args.device as Device;
    const backend = args.backend as Backend;
    const threads = Number(args.threads);
    const w: Workload = {
      batch: Number(args.batch ?? (args.shape === "h200" ? 32 : 8)),
      promptTokens: Number(args.prompt),
      newTokens: Number(args.new),
    };
    const maxSlots = Number(args.slots ?? w.batch);
    if (!Number.isInteger(maxSlots) || maxSlots < w.batch)
      throw new Error(`--slots must be an integer >= batch (${w.batch}); got "${args.slots}"`);
    const loadBefore = loadavg()[0]?.toFixed(2);
    const dir = args.modelDir ?? join(".data", "bench", args.shape);
    ensureModel(dir, { ...shape, seed: 7 }, w.batch);
    const model = await loadHfModel(dir, `bench-${args.shape}`);
    const adapters = Array.from({ length: w.batch }, (_, k) =>
      readPeftDir(join(dir, "adapters", `a${k}`), model.spec),
    );
    const o = { device, backend, threads, hostFeeds: args.hostFeeds };
    const configs = parseEngines(
      args.engines ?? (device === "webgpu" ? "primitive,fused16,int4" : "primitive"),
    );
    const scenarios: Scenario[] = [];
    const groups: { config: EngineConfig; names: Record<string, string> }[] = [];
    const engines: Engine[] = [];
    const plainEngines = new Map<EngineConfig, Engine>();
    const builds: string[] = [];
    for (const config of configs) {
      const graphOptions = graphOptionsOf(config, w.batch);
      const plain = await createEngineFromModel(model, { ...o, ...graphOptions, maxSlots: 0, maxRank: 1 });
      engines.push(plain);
      plainEngines.set(config, plain);
      const baseName = `${config.label}: base, no-LoRA graph`;
      scenarios.push({ name: baseName, run: () => generate(plain, Array(w.batch).fill(0), w) });
      const latencyName = `${config.label}: batch 1, no-LoRA graph`;
      scenarios.push({ name: latencyName, run: () => generate(plain, [0], w) });
      const paths: LoraPath[] = config.graph === "fused" ? ["dense"] : parsePaths(args.loraPath);
      for (const loraPath of paths) {
        const loadStart = performance.now();
        const engine = await createEngineFromModel(model, {
          ...o,
          ...graphOptions,
          maxSlots,
          maxRank: 16,
          loraModules: LORA_MODULES,
          loraPath,
        });
        const loadMs = performance.now() - loadStart;
        const slotStart = performance.now();
        for (const [k, a] of adapters.entries()) engine.setSlot(k + 1, a);
        const slotMs = (performance.now() - slotStart) / adapters.length;
        const label = config.graph === "fused" ? config.label : `${config.label}, ${loraPath} path`;
        builds.push(
          `${label}: engine build ${loadMs.toFixed(0)} ms, writing one adapter ${slotMs.toFixed(1)} ms`,
        );
        engines.push(engine);
        const named = loraScenarios(engine, label, w);
        scenarios.push(...named);
        groups.push({
          config: { ...config, label },
          names: {
            base: baseName,
            latency: latencyName,
            slot0: (named[0] as Scenario).name,
            one: (named[1] as Scenario).name,
            mixed: (named[2] as Scenario).name,
          },
        });
      }
    }
    const rows = await measureAll(scenarios, Number(args.repeats));
    // The no-LoRA engines are what the int4 agreement compares (no extra build for it).
    const agreement = await int4Agreement(configs, plainEngines, w.batch, model.spec.vocabSize);
    for (const e of engines) await e.dispose();
    if (!args.skipSwap) rows.push(await swapRow(model, adapters, w, o));
    const base = (rows[0] as Row).tps;
    const best = Math.max(...rows.filter((r) => r.name.includes("mixed")).map((r) => r.tps));
    // Profiles cost an engine build each: every configuration when asked, else the last one when mixed lags.
    const profiled = args.profile
      ? args.profileEngines
        ? parseEngines(args.profileEngines)
        : configs
      : best < 0.9 * base
        ? [configs.at(-1) as EngineConfig]
        : [];
    const profiles: string[] = [];
    for (const config of profiled) {
      const summary = await profileMixed(
        model,
        { ...o, maxSlots, loraPath: "dense", ...graphOptionsOf(config, w.batch) },
        w.batch,
        w,
        args.profileDir,
      );
      profiles.push("", `Profile of the mixed batch, ${config.label}:`, "", summary);
    }
    const peers = args.peers
      ? runPeers(args.peers, dir, w, Number(args.peerRepeats), mixedOf(groups, rows), { device, threads })
      : [];
    model.weights.close();
    const body = [
      ...header(args, { device, backend, threads, w, maxSlots, loadBefore, builds }),
      summary(groups, rows),
      ...peers,
      "",
      "All scenarios:",
      "",
      table(rows, base),
      ...agreement,
      ...profiles,
    ].join("\n");
    console.log(`\n${body}`);
    const suffix = maxSlots === w.batch ? "" : `:slots${maxSlots}`;
    if (args.write)
      writeSection(args.write, `bench:runner:${args.shape}:${device}:${backend}${suffix}`, body);
  },
});

/** Whether the command line names the flag (citty fills in defaults, so its args cannot tell). */
function flagGiven(name: string): boolean {
  return process.argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
}

function positiveInt(flag: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new Error(`--${flag} must be an integer >= 1; got "${raw}"`);
  return Number(raw);
}

/** `--adapters N,...`: the many-adapter load on the real runner (scripts/bench/runner-adapters.ts). */
async function adaptersMode(
  args: Record<string, unknown>,
  shape: Omit<SyntheticModelOptions, "seed">,
): Promise<void> {
  // the engine scenarios' own flags change nothing here, so they are refused rather than ignored
  const engineOnly = [
    "engines",
    "peers",
    "peerRepeats",
    "loraPath",
    "profile",
    "profileEngines",
    "skipSwap",
    "hostFeeds",
  ];
  const stray = engineOnly.filter((f) => flagGiven(f));
  if (stray.length > 0)
    throw new Error(`--${stray[0]}: not used with --adapters (the runner's own graph serves)`);
  const device = args.device as Device;
  if (device !== "cpu" && device !== "webgpu")
    throw new Error(`--device must be cpu or webgpu; got "${device}"`);
  const backend = args.backend as Backend;
  const counts = String(args.adapters)
    .split(",")
    .map((c) => positiveInt("adapters", c.trim()));
  const batch = positiveInt("batch", String(args.batch ?? (args.shape === "h200" ? 32 : 8)));
  const slots = positiveInt("slots", String(args.slots ?? batch));
  const dir = String(args.modelDir ?? join(".data", "bench", String(args.shape)));
  const families = 8;
  const loadBefore = loadavg()[0]?.toFixed(2);
  ensureModel(dir, { ...shape, seed: 7 }, families);
  const settings = {
    modelDir: dir,
    familyDirs: Array.from({ length: families }, (_, k) => join(dir, "adapters", `a${k}`)),
    counts,
    device,
    backend,
    threads: positiveInt("threads", String(args.threads)),
    slots,
    batch,
    requests: positiveInt("requests", String(args.requests ?? 16 * batch)),
    promptTokens: positiveInt("prompt", String(args.prompt)),
    newTokens: positiveInt("new", String(args.new)),
    repeats: positiveInt("repeats", String(args.repeats)),
    maxCpuLoras: args.maxCpuLoras === undefined ? null : positiveInt("maxCpuLoras", String(args.maxCpuLoras)),
    adapterCacheBytes: positiveInt("adapterCacheBytes", String(args.adapterCacheBytes)),
    probes: positiveInt("probes", String(args.probes)),
  };
  const started = performance.now();
  const { lines } = await runAdapterBench(settings);
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const threads = device === "cpu" ? `, ${settings.threads} onnxruntime thread(s)` : "";
  const body = [
    `### ${args.shape} shape on ${device}/${backend}${threads}: ${counts.join(", ")} adapters, ${slots} slots of rank 16`,
    "",
    `Command: \`npm run bench:runner -- ${process.argv.slice(2).join(" ")}\``,
    `Machine: ${cpu} (${cpus().length} logical CPUs visible); node ${process.version}; ${new Date().toISOString().slice(0, 10)}; load average before the run ${loadBefore}, after ${loadavg()[0]?.toFixed(2)}; wall time ${((performance.now() - started) / 1000).toFixed(0)} s`,
    `Workload per N: ${settings.requests} requests, ${batch} in flight (--max-batch ${batch}), ${settings.promptTokens}-token prompts, ${settings.newTokens} new tokens each (greedy, ignore_eos), adapters r=16 on q, k, v, o drawn with Zipf popularity (α = 1, seeded) from N; runs round-robin over N, a warm-up before each, median of ${settings.repeats}. Tokens/s = generated tokens / wall time; TTFT from the first try (a cold load's 409 and upload included).`,
    "",
    ...lines,
  ].join("\n");
  console.log(`\n${body}`);
  if (typeof args.write === "string")
    writeSection(args.write, `bench:runner:adapters:${args.shape}:${device}:${backend}:slots${slots}`, body);
}

function parsePaths(value: string): LoraPath[] {
  if (value === "both") return ["dense", "gather"];
  if (value === "dense" || value === "gather") return [value];
  throw new Error(`--loraPath must be dense, gather or both; got "${value}"`);
}

function loraScenarios(engine: Engine, label: string, w: Workload): Scenario[] {
  const mixedSlots = Array.from({ length: w.batch }, (_, i) => i + 1);
  return [
    { name: `${label}: base (slot 0)`, run: () => generate(engine, Array(w.batch).fill(0), w) },
    { name: `${label}: one adapter`, run: () => generate(engine, Array(w.batch).fill(1), w) },
    {
      name: `${label}: mixed (${w.batch} adapters, one per row)`,
      run: () => generate(engine, mixedSlots, w),
    },
  ];
}

/**
 * The int4 base's accuracy cost: teacher-forced next-token predictions of the int4 engine against the same
 * graph in float16 (no adapter) over a fixed token stream per lane: top-1 agreement and the mean absolute
 * difference of the reference top-1 token's log-probability.
 */
async function int4Agreement(
  configs: EngineConfig[],
  plain: Map<EngineConfig, Engine>,
  lanes: number,
  vocabSize: number,
): Promise<string[]> {
  const quantized = configs.find((c) => c.quantize);
  const reference = configs.find(
    (c) => c.graph === "fused" && c.precision === quantized?.precision && !c.quantize,
  );
  if (!quantized || !reference) return [];
  const positions = 64;
  const predictions: Float32Array[][][] = [];
  for (const config of [reference, quantized]) {
    const engine = plain.get(config) as Engine;
    const seqs = Array.from({ length: lanes }, () => engine.createSequence(0));
    const perStep: Float32Array[][] = [];
    for (let t = 0; t < positions; t++) {
      const tokens = (lane: number) => [3 + ((lane * 7919 + t * 104729) % (vocabSize - 3))];
      perStep.push(await engine.step(seqs.map((seq, lane) => ({ seq, tokens: tokens(lane) }))));
    }
    for (const seq of seqs) engine.release(seq);
    predictions.push(perStep);
  }
  let agree = 0;
  let total = 0;
  let deltaSum = 0;
  const [ref, q] = predictions as [Float32Array[][], Float32Array[][]];
  for (const [t, rows] of ref.entries()) {
    for (const [lane, logits] of rows.entries()) {
      const other = (q[t] as Float32Array[])[lane] as Float32Array;
      const top = argmaxOf(logits);
      if (argmaxOf(other) === top) agree += 1;
      deltaSum += Math.abs(logprobOf(logits, top) - logprobOf(other, top));
      total += 1;
    }
  }
  return [
    "",
    `int4 base against the same graph in float16, no adapter, ${lanes} lanes × ${positions} teacher-forced positions of a fixed token stream: top-1 agreement ${((100 * agree) / total).toFixed(1)}%, mean |Δ log p(top-1)| ${(deltaSum / total).toFixed(4)}.`,
  ];
}

function argmaxOf(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

function logprobOf(values: Float32Array, index: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) max = Math.max(max, v);
  let sum = 0;
  for (const v of values) sum += Math.exp(v - max);
  return (values[index] as number) - max - Math.log(sum);
}

/** Our best mixed and base figures, for the peers' ratios. */
function mixedOf(groups: { config: EngineConfig; names: Record<string, string> }[], rows: Row[]) {
  const byName = new Map(rows.map((r) => [r.name, r.tps]));
  let best = { label: "", mixed: 0, base: 0 };
  for (const { config, names } of groups) {
    const mixed = byName.get(names.mixed ?? "") ?? 0;
    if (mixed > best.mixed) best = { label: config.label, mixed, base: byName.get(names.base ?? "") ?? 0 };
  }
  return best;
}

interface PeerScenario {
  tokens_per_s: number;
  decode_step_ms: number;
}

/**
 * Runs the Python peers on the same model folder and workload, one after the other (our engines are
 * disposed by then, so the GPU is theirs alone), and prints their rows beside our best mixed engine.
 */
function runPeers(
  list: string,
  modelDir: string,
  w: Workload,
  repeats: number,
  ours: { label: string; mixed: number; base: number },
  on: { device: Device; threads: number },
): string[] {
  const common = ["--model-dir", modelDir, "--batch", String(w.batch), "--prompt", String(w.promptTokens)];
  // On CPU the peers get our thread count; on a GPU they run on CUDA.
  if (on.device === "cpu") common.push("--device", "cpu", "--threads", String(on.threads));
  common.push("--new", String(w.newTokens), "--adapters", String(w.batch), "--repeats", String(repeats));
  const lines = [
    "",
    `Peers in the same run, on the same model folder and workload (ratio: ours = ${ours.label}, mixed ${ours.mixed.toFixed(0)} tokens/s):`,
    "",
    "| peer | base tokens/s | one adapter | mixed | batch 1: ms per token | ours ÷ peer (mixed) |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  const row = (name: string, s: Record<string, PeerScenario>, batch1: number | undefined) => {
    const [base, one, mixed] = [s.base, s.one, s.mixed] as [PeerScenario, PeerScenario, PeerScenario];
    lines.push(
      `| ${name} | ${base.tokens_per_s.toFixed(0)} | ${one.tokens_per_s.toFixed(0)} | ${mixed.tokens_per_s.toFixed(0)} | ${batch1?.toFixed(1) ?? "–"} | ${(ours.mixed / mixed.tokens_per_s).toFixed(2)} |`,
    );
  };
  for (const peer of list.split(",")) {
    const script = { torch: "torch_decoder.py", peft: "peft_generate.py" }[peer];
    if (!script) throw new Error(`--peers: unknown peer "${peer}" (known: torch, peft)`);
    const out = join(tmpdir(), `lora-edge-peer-${process.pid}-${peer}.json`);
    // From the project root, as the bench runs both from a checkout and bundled in dist/ (bench:bundle).
    const path = join("scripts", "bench", script);
    if (!existsSync(path)) throw new Error(`--peers ${peer}: ${path} not found (run from the project root)`);
    execFileSync("python3", [path, ...common, "--json", out], {
      stdio: "inherit",
      env: { ...process.env, PYTHONUNBUFFERED: "1" },
    });
    const result = JSON.parse(readFileSync(out, "utf8"));
    rmSync(out, { force: true });
    const versions = `torch ${result.torch}${result.transformers ? `, transformers ${result.transformers}, peft ${result.peft}` : ""}, ${result.dtype}`;
    if (peer === "torch") {
      for (const [mode, label] of [
        ["eager", "compact PyTorch decoder, eager"],
        ["graph", "compact PyTorch decoder, decode step in a CUDA graph"],
      ] as const) {
        const m = result.modes?.[mode];
        if (m) row(`${label} (${versions})`, m, m.batch1_base_decode_ms_per_token);
      }
    } else {
      row(
        `HF transformers + PEFT generate(adapter_names=…) (${versions})`,
        result.scenarios,
        result.batch1_base_decode_ms_per_token,
      );
    }
  }
  return lines;
}

function parseEngines(value: string): EngineConfig[] {
  return value.split(",").map((name) => {
    const config = ENGINE_CONFIGS[name];
    if (!config)
      throw new Error(
        `--engines: unknown engine "${name}" (known: ${Object.keys(ENGINE_CONFIGS).join(", ")})`,
      );
    return config;
  });
}

/** One line per engine: base, one adapter, mixed, mixed ÷ base and batch-1 decode latency. */
function summary(groups: { config: EngineConfig; names: Record<string, string> }[], rows: Row[]): string {
  const byName = new Map(rows.map((r) => [r.name, r]));
  const get = (name: string | undefined) => byName.get(name ?? "") as Row;
  const lines = [
    "| engine | base tokens/s | one adapter | mixed | mixed ÷ base | batch 1: ms per token |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const { config, names } of groups) {
    const [base, one, mixed, latency] = [
      get(names.base),
      get(names.one),
      get(names.mixed),
      get(names.latency),
    ];
    const msPerToken = latency ? (1000 / latency.tps).toFixed(1) : "–";
    lines.push(
      `| ${config.label} | ${base.tps.toFixed(0)} | ${one.tps.toFixed(0)} | ${mixed.tps.toFixed(0)} | ${(mixed.tps / base.tps).toFixed(2)} | ${msPerToken} (${latency.detail}) |`,
    );
  }
  return lines.join("\n");
}

async function swapRow(
  model: HfModel,
  adapters: AdapterWeights[],
  w: Workload,
  o: { device: Device; backend: Backend; threads: number; hostFeeds: boolean },
): Promise<Row> {
  const r = await mergeAndSwap(model, adapters, w, o);
  const row = {
    name: `merge-and-swap (${w.batch} adapters, one at a time)`,
    tps: r.tokens / r.seconds,
    detail: `merge + session build ${r.swapMs.toFixed(0)} ms per adapter`,
  };
  console.log(`${row.name}: ${row.tps.toFixed(1)} tokens/s, ${row.detail}`);
  return row;
}

function header(
  args: { shape: string; repeats: string },
  c: {
    device: Device;
    backend: Backend;
    threads: number;
    w: Workload;
    maxSlots: number;
    loadBefore: string | undefined;
    builds: string[];
  },
): string[] {
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const threads = c.device === "cpu" ? `, ${c.threads} thread(s)` : "";
  return [
    `### ${args.shape} shape on ${c.device}/${c.backend}${threads}, ${c.maxSlots} slots of rank 16`,
    "",
    `Command: \`npm run bench:runner -- ${process.argv.slice(2).join(" ")}\``,
    `Machine: ${cpu} (${cpus().length} logical CPUs visible); node ${process.version}; ${new Date().toISOString().slice(0, 10)}; load average before the run ${c.loadBefore}`,
    `Workload: batch ${c.w.batch} × ${c.w.promptTokens}-token prompts, ${c.w.newTokens} new tokens per row (greedy), median of ${args.repeats} runs after a warm-up; tokens/s counts generated tokens over wall time including prefill.`,
    `${c.builds.join("; ")}.`,
    "",
  ];
}

await runMain(command);
