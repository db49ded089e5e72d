// `npm run bench:runner -- [--shape cpu|h200] [--device cpu|webgpu] [--backend native|wasm] [--threads N]`
// Generated tokens/s of the multi-LoRA engine, in one process, for base-only, one-adapter and mixed batches
// (every row a different adapter) on each LoRA path (dense, gather), beside a no-LoRA graph and a
// merge-and-swap baseline. Prints a table; `--write FILE` also puts it into that markdown file between this
// configuration's markers.
import { existsSync, readdirSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { createEngineFromModel } from "../../gpu-runner/engine/engine.ts";
import { type HfModel, loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import type { LoraPath } from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import type { AdapterWeights, Backend, Device, Engine } from "../../gpu-runner/engine/types.ts";
import { PEFT_CONFIG_FILE } from "../../src/adapters/peft-files.ts";
import { formatProfile, summariseProfile } from "./ort-profile.ts";
import { measureAll, type Row, type Scenario, table, writeSection } from "./runner-report.ts";
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
}

async function profileMixed(model: HfModel, o: EngineChoice, adapters: number, w: Workload): Promise<string> {
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
    skipSwap: { type: "boolean", default: false, description: "skip the merge-and-swap baseline" },
    hostFeeds: {
      type: "boolean",
      default: false,
      description: "feed LoRA stacks and KV from host memory every step",
    },
  },
  async run({ args }) {
    const shape = SHAPES[args.shape];
    if (!shape)
      throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(", ")}; got "${args.shape}"`);
    const paths = parsePaths(args.loraPath);
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
    const plain = await createEngineFromModel(model, { ...o, maxSlots: 0, maxRank: 1 });
    const scenarios: Scenario[] = [
      { name: "base, no-LoRA graph", run: () => generate(plain, Array(w.batch).fill(0), w) },
    ];
    const engines: Engine[] = [plain];
    const builds: string[] = [];
    for (const loraPath of paths) {
      const loadStart = performance.now();
      const engine = await createEngineFromModel(model, {
        ...o,
        maxSlots,
        maxRank: 16,
        loraModules: LORA_MODULES,
        loraPath,
      });
      const loadMs = performance.now() - loadStart;
      const slotStart = performance.now();
      for (const [k, a] of adapters.entries()) engine.setSlot(k + 1, a);
      const slotMs = (performance.now() - slotStart) / adapters.length;
      builds.push(
        `${loraPath}: engine build ${loadMs.toFixed(0)} ms, writing one adapter ${slotMs.toFixed(1)} ms`,
      );
      engines.push(engine);
      scenarios.push(...loraScenarios(engine, loraPath, w));
    }
    const rows = await measureAll(scenarios, Number(args.repeats));
    for (const e of engines) await e.dispose();
    if (!args.skipSwap) rows.push(await swapRow(model, adapters, w, o));
    const base = (rows[0] as Row).tps;
    const best = Math.max(...rows.filter((r) => r.name.startsWith("mixed")).map((r) => r.tps));
    const profilePath = paths.includes("dense") ? "dense" : "gather";
    const profile =
      args.profile || best < 0.9 * base
        ? await profileMixed(model, { ...o, maxSlots, loraPath: profilePath }, w.batch, w)
        : null;
    model.weights.close();
    const body = [
      ...header(args, { device, backend, threads, w, maxSlots, loadBefore, builds }),
      table(rows, base),
      ...(profile
        ? ["", `Per-op profile of the mixed batch, ${profilePath} path (ORT kernel time):`, "", profile]
        : []),
    ].join("\n");
    console.log(`\n${body}`);
    const suffix = maxSlots === w.batch ? "" : `:slots${maxSlots}`;
    if (args.write)
      writeSection(args.write, `bench:runner:${args.shape}:${device}:${backend}${suffix}`, body);
  },
});

function parsePaths(value: string): LoraPath[] {
  if (value === "both") return ["dense", "gather"];
  if (value === "dense" || value === "gather") return [value];
  throw new Error(`--loraPath must be dense, gather or both; got "${value}"`);
}

function loraScenarios(engine: Engine, path: LoraPath, w: Workload): Scenario[] {
  const mixedSlots = Array.from({ length: w.batch }, (_, i) => i + 1);
  return [
    { name: `base (slot 0), ${path} path`, run: () => generate(engine, Array(w.batch).fill(0), w) },
    { name: `one adapter, ${path} path`, run: () => generate(engine, Array(w.batch).fill(1), w) },
    {
      name: `mixed (${w.batch} adapters, one per row), ${path} path`,
      run: () => generate(engine, mixedSlots, w),
    },
  ];
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
