// Builds the runner's parts from a config: engine, tokenizer, scheduler, adapter cache, metrics, static
// adapters. Separate from main.ts so tests build the same runner without a socket or process.env.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type BaseModelSpec, baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { AppError } from "../../src/errors.ts";
import { readPeftFiles } from "../engine/model/peft-dir.ts";
import { createAbsentTokenizer, hasTokenizer, loadTokenizer } from "../engine/tokenizer/index.ts";
import { createTokenizerPool, inPlacePromptTokenizer } from "../engine/tokenizer/tokenizer-pool.ts";
import type { GraphKind } from "../engine/engine.ts";
import type { Precision } from "../engine/onnx/fused-decoder.ts";
import type { Engine } from "../engine/types.ts";
import { createPrepareAdapter } from "./adapter-prepare.ts";
import { createAdapterTierMetrics, watchAdapterTiers } from "./adapter-metrics.ts";
import { AdapterCache, DEFAULT_ADAPTER_CACHE_BYTES } from "./adapters.ts";
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
  /** The base model's id as served (--served-model-name's first); default: the directory's name. */
  id?: string;
  graph?: GraphKind;
  precision?: Precision;
  quantize?: "int4";
  /** --max-model-len. */
  contextLength?: number;
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
  // optional so a caller that does not care gets vLLM's default (probes open) and the engine's defaults
  Partial<
    Pick<
      RunnerConfig,
      "publicProbes" | "servedModelNames" | "maxModelLen" | "graph" | "precision" | "quantize"
    >
  >;

/** The serving bounds (README.md, "Limits"); absent: their flags' defaults. */
type BoundsConfig = Partial<
  Pick<
    RunnerConfig,
    | "maxBatchPerTenant"
    | "maxQueuePerTenant"
    | "maxPrefillTokens"
    | "tokenizerPoolSize"
    | "tokenizeDeadlineMs"
    | "maxLoraFileBytes"
  >
>;

/** The adapter tiers' bounds; absent: no count bound, the default byte budget, the default slot wait. */
type TierConfig = Partial<Pick<RunnerConfig, "maxCpuLoras" | "adapterCacheBytes">> & {
  /** Longest a request waits for an adapter slot before 503 (the scheduler's slotWaitMs). */
  slotWaitMs?: number;
};

export const DEFAULT_TOKENIZER_POOL_SIZE = 2;
export const DEFAULT_TOKENIZE_DEADLINE_MS = 10_000;

export async function buildRunner(
  config: Config & TierConfig & BoundsConfig,
  createEngine: EngineFactory,
): Promise<Runner> {
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
    ...(config.servedModelNames?.[0] === undefined ? {} : { id: config.servedModelNames[0] }),
    ...(config.graph === undefined ? {} : { graph: config.graph }),
    ...(config.precision === undefined ? {} : { precision: config.precision }),
    ...(config.quantize === undefined ? {} : { quantize: config.quantize }),
    ...(config.maxModelLen === undefined ? {} : { contextLength: config.maxModelLen }),
  }).catch((error: unknown) => {
    throw asFlagError(error);
  });
  const servedModelNames =
    config.servedModelNames && config.servedModelNames.length > 0
      ? config.servedModelNames
      : [engine.info.id];
  const tokenizer = textTokenizer ?? createAbsentTokenizer(engine.info.id, engine.info.vocabSize);
  const spec = await baseModelSpecFromConfig(engine.info.id, await readModelConfig(config.model));
  const metrics = createMetrics();
  const vllm = createVllmMetrics(metrics, { modelName: engine.info.id, maxLoras: config.maxLoras });
  const tierMetrics = createAdapterTierMetrics(metrics);
  const scheduler = new Scheduler({
    engine,
    maxBatch: config.maxBatch,
    maxQueue: config.maxQueue,
    ...(config.maxPrefillTokens === undefined ? {} : { prefillTokens: config.maxPrefillTokens }),
    metrics,
    observer: vllm.observer,
    slotMetrics: tierMetrics,
    ...(config.slotWaitMs === undefined ? {} : { slotWaitMs: config.slotWaitMs }),
    // without an API key no tenant is named (tenantOf), so every request is one group: bounds would only idle it
    maxRunningPerTenant:
      config.runnerToken === null
        ? config.maxBatch
        : Math.min(config.maxBatchPerTenant ?? Math.ceil(config.maxBatch / 2), config.maxBatch),
    maxQueuePerTenant:
      config.runnerToken === null
        ? config.maxQueue
        : Math.min(config.maxQueuePerTenant ?? Math.ceil(config.maxQueue / 2), config.maxQueue),
  });
  const adapters = new AdapterCache({
    engine,
    prepare: createPrepareAdapter(spec, engine.maxRank),
    metrics,
    tierMetrics,
    limits: {
      maxAdapters: config.maxCpuLoras ?? null,
      budgetBytes: config.adapterCacheBytes ?? DEFAULT_ADAPTER_CACHE_BYTES,
    },
    // slots are written only between engine steps (the engine refuses writes during one)
    gate: scheduler,
  });
  metrics.addGauge("runner_queue_depth", "Requests waiting to join the batch", () => scheduler.queueDepth);
  metrics.addGauge(
    "runner_running_sequences",
    "Sequences in the running batch",
    () => scheduler.runningCount,
  );
  metrics.addGauge("runner_resident_adapters", "Adapters resident in slots", () => adapters.list().length);
  watchAdapterTiers(metrics, adapters);
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
  // tokenization off the event loop, in worker threads that load the same tokenizer (README.md, "Limits")
  const prompts =
    textTokenizer === null
      ? inPlacePromptTokenizer(tokenizer)
      : createTokenizerPool({
          modelDir: config.model,
          local: textTokenizer,
          size: config.tokenizerPoolSize ?? DEFAULT_TOKENIZER_POOL_SIZE,
          deadlineMs: config.tokenizeDeadlineMs ?? DEFAULT_TOKENIZE_DEADLINE_MS,
          deadlineSetting: "the runner's --tokenize-deadline-ms",
        });
  const stopTokenIds = [
    ...new Set([
      ...engine.info.eosTokenIds,
      ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId]),
    ]),
  ];
  const deps: RunnerDeps = {
    modelId: engine.info.id,
    servedModelNames,
    adapterParents: new Map(
      config.loras.flatMap((l) => (l.baseModelName === undefined ? [] : [[l.name, l.baseModelName]])),
    ),
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
    maxAdapterBytes: config.maxLoraFileBytes ?? maxAdapterBytes(spec, engine.maxRank),
    maxAdapterBytesSetting:
      config.maxLoraFileBytes === undefined
        ? "every linear of the base at this runner's --max-lora-rank, in F32"
        : "--max-lora-file-bytes",
    readAdapterDir: (path, maxBytes) => readPeftFiles(path, { maxBytes }),
    prompts,
    startedAt: Date.now(),
    version: RUNNER_VERSION,
  };
  return {
    deps,
    close: async () => {
      await scheduler.close();
      await prompts.close();
      await engine.dispose();
    },
  };
}

/** The engine options the runner's flags set, by the flag that sets each. */
const FLAG_OF_OPTION: Readonly<Record<string, string>> = {
  contextLength: "max-model-len",
  graph: "graph",
  precision: "precision",
  quantize: "quantize",
};

/** An engine refusal of an option, told under the runner's flag name (docs/conventions.md#errors). */
function asFlagError(error: unknown): unknown {
  if (!(error instanceof AppError) || error.param === null) return error;
  const flag = FLAG_OF_OPTION[error.param];
  if (flag === undefined) return error;
  return new AppError(error.code, error.message.replace(error.param, `--${flag}`), {
    param: flag,
    details: error.details,
    cause: error,
  });
}

/** Every linear adapted at `rank` in float32 (the widest dtype accepted), plus 1 MiB for the JSON header. */
export function maxAdapterBytes(spec: BaseModelSpec, rank: number): number {
  const weights = spec.modules.reduce((sum, m) => sum + (m.inFeatures + m.outFeatures) * rank * 4, 0);
  return weights + 1024 * 1024;
}
