// Builds the runner's parts from a config: engine, tokenizer, scheduler, adapter cache, metrics, static
// adapters. Separate from main.ts so tests build the same runner without a socket or process.env.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type BaseModelSpec, baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { AppError } from "../../src/errors.ts";
import { readPeftFiles } from "../engine/model/peft-dir.ts";
import { createAbsentTokenizer, hasTokenizer, loadTokenizer } from "../engine/tokenizer/index.ts";
import type { Engine } from "../engine/types.ts";
import { createPrepareAdapter } from "./adapter-prepare.ts";
import { AdapterCache } from "./adapters.ts";
import type { RunnerConfig } from "./config.ts";
import { readSamplingDefaults } from "./generation-defaults.ts";
import type { RunnerDeps } from "./http/deps.ts";
import { createMetrics } from "./metrics.ts";
import { Scheduler } from "./scheduler.ts";
import { createVllmMetrics } from "./vllm-metrics.ts";

export type EngineFactory = (options: {
  modelDir: string;
  device: RunnerConfig["device"];
  backend: RunnerConfig["backend"];
  maxSlots: number;
  maxRank: number;
  /** Sequences held at once (the fused graph's lanes). */
  lanes?: number;
  threads?: number;
}) => Promise<Engine>;

export interface Runner {
  deps: RunnerDeps;
  /** Stops the scheduler and frees the engine. */
  close(): Promise<void>;
}

export const RUNNER_VERSION = "0.1.0";

async function readModelConfig(modelDir: string): Promise<unknown> {
  const path = join(modelDir, "config.json");
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new AppError("invalid_model", `${path}: cannot read JSON (${(error as Error).message})`);
  }
}

type Config = Pick<
  RunnerConfig,
  | "model"
  | "loras"
  | "device"
  | "backend"
  | "maxLoras"
  | "maxLoraRank"
  | "maxBatch"
  | "maxQueue"
  | "threads"
  | "runnerToken"
> &
  // optional so a caller that does not care gets vLLM's default (probes open)
  Partial<Pick<RunnerConfig, "publicProbes">>;

export async function buildRunner(config: Config, createEngine: EngineFactory): Promise<Runner> {
  // a broken tokenizer.json fails before the engine is built; a missing one means token-ids mode
  const textTokenizer = (await hasTokenizer(config.model)) ? await loadTokenizer(config.model) : null;
  const samplingDefaults = await readSamplingDefaults(config.model);
  const engine = await createEngine({
    modelDir: config.model,
    device: config.device,
    backend: config.backend,
    maxSlots: config.maxLoras,
    maxRank: config.maxLoraRank,
    // the fused graph (WebGPU's default) holds one lane per running sequence
    lanes: config.maxBatch,
    ...(config.threads === undefined ? {} : { threads: config.threads }),
  });
  const tokenizer = textTokenizer ?? createAbsentTokenizer(engine.info.id, engine.info.vocabSize);
  const spec = await baseModelSpecFromConfig(engine.info.id, await readModelConfig(config.model));
  const metrics = createMetrics();
  const vllm = createVllmMetrics(metrics, { modelName: engine.info.id, maxLoras: config.maxLoras });
  const scheduler = new Scheduler({
    engine,
    maxBatch: config.maxBatch,
    maxQueue: config.maxQueue,
    metrics,
    observer: vllm.observer,
  });
  const adapters = new AdapterCache({ engine, prepare: createPrepareAdapter(spec, engine.maxRank), metrics });
  metrics.addGauge("runner_queue_depth", "Requests waiting to join the batch", () => scheduler.queueDepth);
  metrics.addGauge(
    "runner_running_sequences",
    "Sequences in the running batch",
    () => scheduler.runningCount,
  );
  metrics.addGauge("runner_resident_adapters", "Adapters resident in slots", () => adapters.list().length);
  metrics.addInfo(
    "runner_adapter_info",
    "Display names of each resident adapter, by content id (1 per adapter)",
    () => adapters.info(),
  );
  vllm.watch(scheduler);
  for (const lora of config.loras) {
    await adapters.load({
      ...(await readPeftFiles(lora.path)),
      name: lora.name,
      source: lora.path,
      pinned: true,
    });
  }
  const stopTokenIds = [
    ...new Set([
      ...engine.info.eosTokenIds,
      ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId]),
    ]),
  ];
  const deps: RunnerDeps = {
    modelId: engine.info.id,
    modelPath: config.model,
    engine,
    tokenizer,
    scheduler,
    adapters,
    metrics,
    runnerToken: config.runnerToken,
    publicProbes: config.publicProbes ?? true,
    baseModelFingerprint: spec.fingerprint,
    stopTokenIds,
    samplingDefaults,
    maxAdapterBytes: maxAdapterBytes(spec, engine.maxRank),
    readAdapterDir: readPeftFiles,
    startedAt: Date.now(),
    version: RUNNER_VERSION,
  };
  return {
    deps,
    close: async () => {
      await scheduler.close();
      await engine.dispose();
    },
  };
}

/** Every linear adapted at `rank` in float32 (the widest dtype accepted), plus 1 MiB for the JSON header. */
export function maxAdapterBytes(spec: BaseModelSpec, rank: number): number {
  const weights = spec.modules.reduce((sum, m) => sum + (m.inFeatures + m.outFeatures) * rank * 4, 0);
  return weights + 1024 * 1024;
}
