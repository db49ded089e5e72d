// `npm run bench:runner -- [--shape cpu|h200] [--device cpu|webgpu] [--backend native|wasm] [--threads N]`
// Generated tokens/s of the multi-LoRA engine, in one process, for base-only, one-adapter and mixed batches
// (every row a different adapter), beside a no-LoRA graph and a merge-and-swap baseline. Prints a table;
// `--write FILE` also puts it into that markdown file between this shape's markers.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { createEngineFromModel } from "../../gpu-runner/engine/engine.ts";
import type { Backend, Device, Engine } from "../../gpu-runner/engine/types.ts";
import { type HfModel, loadHfModel } from "../../gpu-runner/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/model/peft-dir.ts";
import { formatProfile, summariseProfile } from "./ort-profile.ts";
import { generate, mergeAndSwap, type RunTiming, type Workload } from "./runner-scenarios.ts";
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
    if (existsSync(join(adapterDir, "adapter_config.json"))) continue;
    writeSyntheticAdapter(adapterDir, shape, {
      seed: 1000 + k,
      r: 16,
      alpha: 32,
      targetModules: [...LORA_MODULES],
      std: 0.02,
    });
  }
}

interface Row {
  name: string;
  tps: number;
  detail: string;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

interface Scenario {
  name: string;
  run: () => Promise<RunTiming>;
}

/**
 * Warms every scenario up, then runs them round-robin `repeats` times, so that load from other processes
 * (a shared machine) falls on all of them alike; reports each one's median.
 */
async function measureAll(scenarios: Scenario[], repeats: number): Promise<Row[]> {
  const timings: RunTiming[][] = scenarios.map(() => []);
  for (const s of scenarios) {
    const t = await s.run();
    console.log(
      `  ${s.name}, warm-up: ${(t.tokens / t.seconds).toFixed(1)} tokens/s, prefill ${t.prefillMs.toFixed(0)} ms`,
    );
  }
  for (let i = 0; i < repeats; i++) {
    for (const [k, s] of scenarios.entries()) {
      const t = await s.run();
      timings[k]?.push(t);
      console.log(`  ${s.name}, run ${i + 1}: ${(t.tokens / t.seconds).toFixed(1)} tokens/s`);
    }
  }
  return scenarios.map((s, k) => {
    const t = timings[k] as RunTiming[];
    const tps = median(t.map((x) => x.tokens / x.seconds));
    const detail = `prefill ${median(t.map((x) => x.prefillMs)).toFixed(0)} ms, decode step ${median(t.map((x) => x.decodeStepMs)).toFixed(1)} ms`;
    console.log(`${s.name}: ${tps.toFixed(1)} tokens/s, ${detail}`);
    return { name: s.name, tps, detail };
  });
}

function table(rows: Row[], base: number): string {
  const lines = ["| scenario | tokens/s | × base (no-LoRA graph) | detail |", "| --- | ---: | ---: | --- |"];
  for (const r of rows)
    lines.push(`| ${r.name} | ${r.tps.toFixed(1)} | ${(r.tps / base).toFixed(2)} | ${r.detail} |`);
  return lines.join("\n");
}

function writeSection(file: string, marker: string, body: string): void {
  const [open, close] = [`<!-- ${marker}:start -->`, `<!-- ${marker}:end -->`];
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const section = `${open}\n${body}\n${close}`;
  const at = text.indexOf(open);
  const next =
    at >= 0
      ? text.slice(0, at) + section + text.slice(text.indexOf(close) + close.length)
      : `${text}\n${section}\n`;
  writeFileSync(file, next);
}

async function profileMixed(
  model: HfModel,
  o: { device: Device; backend: Backend; threads: number; hostFeeds: boolean },
  adapters: number,
  w: Workload,
): Promise<string> {
  const prefix = join(tmpdir(), `lora-edge-profile-${process.pid}`);
  const engine = await createEngineFromModel(model, {
    ...o,
    maxSlots: adapters,
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
    const device = args.device as Device;
    const backend = args.backend as Backend;
    const threads = Number(args.threads);
    const w: Workload = {
      batch: Number(args.batch ?? (args.shape === "h200" ? 32 : 8)),
      promptTokens: Number(args.prompt),
      newTokens: Number(args.new),
    };
    const loadBefore = loadavg()[0]?.toFixed(2);
    const dir = args.modelDir ?? join(".data", "bench", args.shape);
    ensureModel(dir, { ...shape, seed: 7 }, w.batch);
    const model = await loadHfModel(dir, `bench-${args.shape}`);
    const adapters = Array.from({ length: w.batch }, (_, k) =>
      readPeftDir(join(dir, "adapters", `a${k}`), model.spec),
    );
    const o = { device, backend, threads, hostFeeds: args.hostFeeds };
    const repeats = Number(args.repeats);
    const plain = await createEngineFromModel(model, { ...o, maxSlots: 0, maxRank: 1 });
    const loadStart = performance.now();
    const engine: Engine = await createEngineFromModel(model, {
      ...o,
      maxSlots: w.batch,
      maxRank: 16,
      loraModules: LORA_MODULES,
    });
    const loadMs = performance.now() - loadStart;
    const slotStart = performance.now();
    for (const [k, a] of adapters.entries()) engine.setSlot(k + 1, a);
    const slotMs = (performance.now() - slotStart) / adapters.length;
    const mixedSlots = Array.from({ length: w.batch }, (_, i) => i + 1);
    const rows = await measureAll(
      [
        { name: "base, no-LoRA graph", run: () => generate(plain, Array(w.batch).fill(0), w) },
        { name: "base (slot 0), multi-LoRA graph", run: () => generate(engine, Array(w.batch).fill(0), w) },
        { name: "one adapter", run: () => generate(engine, Array(w.batch).fill(1), w) },
        { name: `mixed (${w.batch} adapters, one per row)`, run: () => generate(engine, mixedSlots, w) },
      ],
      repeats,
    );
    await plain.dispose();
    await engine.dispose();
    if (!args.skipSwap) {
      const r = await mergeAndSwap(model, adapters, w, o);
      const row = {
        name: `merge-and-swap (${w.batch} adapters, one at a time)`,
        tps: r.tokens / r.seconds,
        detail: `merge + session build ${r.swapMs.toFixed(0)} ms per adapter`,
      };
      console.log(`${row.name}: ${row.tps.toFixed(1)} tokens/s, ${row.detail}`);
      rows.push(row);
    }
    const base = (rows[0] as Row).tps;
    const mixed = (rows[3] as Row).tps;
    const profile = args.profile || mixed < 0.9 * base ? await profileMixed(model, o, w.batch, w) : null;
    model.weights.close();
    const cpu = cpus()[0]?.model ?? "unknown CPU";
    const header = [
      `### ${args.shape} shape on ${device}/${backend}${device === "cpu" ? `, ${threads} thread(s)` : ""}`,
      "",
      `Command: \`npm run bench:runner -- ${process.argv.slice(2).join(" ")}\``,
      `Machine: ${cpu} (${cpus().length} logical CPUs visible); node ${process.version}; ${new Date().toISOString().slice(0, 10)}; load average before the run ${loadBefore}`,
      `Workload: batch ${w.batch} × ${w.promptTokens}-token prompts, ${w.newTokens} new tokens per row (greedy), median of ${repeats} runs after a warm-up; tokens/s counts generated tokens over wall time including prefill.`,
      `Engine build ${loadMs.toFixed(0)} ms; writing one adapter into a slot ${slotMs.toFixed(1)} ms.`,
      "",
    ];
    const body = [
      ...header,
      table(rows, base),
      ...(profile ? ["", "Per-op profile of the mixed batch (ORT kernel time):", "", profile] : []),
    ].join("\n");
    console.log(`\n${body}`);
    if (args.write) writeSection(args.write, `bench:runner:${args.shape}:${device}:${backend}`, body);
  },
});

await runMain(command);
