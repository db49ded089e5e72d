// The runner's command line (citty for the flags and --help) and environment, checked in one place so a
// mistake fails at start with the flag, the rule and the value.
import { basename, resolve } from "node:path";
import { type ArgsDef, parseArgs } from "citty";
import { AppError } from "../../src/errors.ts";
import { DEFAULT_MAX_RANK } from "../../src/adapters/validate.ts";
import type { GraphKind } from "../engine/engine.ts";
import type { Precision } from "../engine/onnx/fused-decoder.ts";
import type { Backend, Device } from "../engine/types.ts";
import { FLEET_ARGS, type FleetFlags, parseFleetFlags } from "./fleet-flags.ts";
import {
  parseLoraModule,
  parseMaxModelLen,
  refuseRunnerFlags,
  resolveApiKey,
  scanArgv,
} from "./vllm-flags.ts";

export interface StaticLora {
  name: string;
  path: string;
  /** --lora-modules' base_model_name: the served base name /v1/models gives as its `parent`. */
  baseModelName?: string;
}

export interface RunnerConfig {
  model: string;
  loras: StaticLora[];
  host: string;
  port: number;
  device: Device;
  backend: Backend;
  maxLoras: number;
  /** --max-cpu-loras: most adapters in the host-memory tier; null: bounded by adapterCacheBytes only. */
  maxCpuLoras: number | null;
  /** --adapter-cache-bytes: most bytes of decoded adapter weights in the host-memory tier. */
  adapterCacheBytes: number;
  maxLoraRank: number;
  maxBatch: number;
  maxQueue: number;
  /** --max-batch-per-tenant: most running rows of one tenant the edge names; default half of --max-batch. */
  maxBatchPerTenant: number;
  /** --max-queue-per-tenant: a tenant's share of --max-queue (waiting beyond its running rows); default half. */
  maxQueuePerTenant: number;
  /** --max-prefill-tokens: most prompt tokens one prefill step holds, counted as the engine pads them. */
  maxPrefillTokens: number;
  /** --tokenizer-pool-size: worker threads that tokenize prompts off the event loop. */
  tokenizerPoolSize: number;
  /** --tokenize-deadline-ms: longest one prompt may take to tokenize before it is refused with 413. */
  tokenizeDeadlineMs: number;
  /** --max-lora-file-bytes: most bytes of a local adapter file load_lora_adapter reads; undefined: the base's bound. */
  maxLoraFileBytes: number | undefined;
  threads: number | undefined;
  runnerToken: string | null;
  /** /health and /metrics answer without RUNNER_TOKEN. */
  publicProbes: boolean;
  /** --served-model-name: every name the base answers to, the first as its id; empty: the --model folder's name. */
  servedModelNames: string[];
  /** --max-model-len: the context length (prompt + completion); undefined: the model's own limit. */
  maxModelLen: number | undefined;
  /** undefined: the device's default (engine.ts `defaultGraph`: fused on WebGPU, primitive on CPU). */
  graph: GraphKind | undefined;
  /** undefined: the graph's default (float32 on CPU, float16 for the fused graph on WebGPU). */
  precision: Precision | undefined;
  quantize: "int4" | undefined;
  /** --join and its companions (fleet-flags.ts); null: not a fleet member. */
  fleet: FleetFlags | null;
}

export const RUNNER_ARGS = {
  model: { type: "string", required: true, description: "Hugging Face model directory" },
  lora: { type: "string", description: "static adapter <name>=<peft-dir>, pinned; repeat for more" },
  "lora-modules": {
    type: "string",
    description:
      'vLLM\'s spelling of --lora: name=path ... or JSON {"name":..,"path":..,"base_model_name":..}; several values, repeatable',
  },
  "served-model-name": {
    type: "string",
    description:
      "names the base model answers to (/v1/models lists each; the first is its id); several values. Default: the --model folder's name",
  },
  "api-key": {
    type: "string",
    description: "bearer key every request must carry (or VLLM_API_KEY, or RUNNER_TOKEN)",
  },
  "max-model-len": {
    type: "string",
    description:
      "context length, prompt + completion (2k = 2000, 2K = 2048); at most the model's own. Default: the model's",
  },
  graph: {
    type: "string",
    description:
      "decoder graph: primitive (standard ops) or fused (onnxruntime contrib ops, fixed lanes). Default: fused on webgpu for the families it computes, else primitive",
  },
  precision: {
    type: "string",
    description:
      "float32 or float16 (float16 needs --graph fused). Default: float32; fused on webgpu: float16",
  },
  quantize: { type: "string", description: "int4: base linears stored 4-bit (needs --graph fused)" },
  "enable-lora": {
    type: "boolean",
    description: "accepted as vLLM's: adapters are always enabled on this runner",
  },
  host: { type: "string", default: "127.0.0.1", description: "address to listen on" },
  port: { type: "string", default: "8000", description: "port to listen on" },
  device: { type: "string", default: "cpu", description: "execution device: cpu or webgpu" },
  backend: { type: "string", default: "native", description: "onnxruntime build: native or wasm" },
  "max-loras": { type: "string", default: "8", description: "resident adapter slots" },
  "max-cpu-loras": {
    type: "string",
    description:
      "most adapters kept decoded in host memory behind the slots (>= --max-loras). Default: no count bound, --adapter-cache-bytes bounds it",
  },
  "adapter-cache-bytes": {
    type: "string",
    default: "2147483648",
    description: "most bytes of decoded adapter weights kept in host memory (default 2 GiB)",
  },
  "max-lora-rank": {
    type: "string",
    default: String(DEFAULT_MAX_RANK),
    description: "widest adapter rank a slot holds (the edge's default MAX_LORA_RANK too)",
  },
  "max-batch": { type: "string", default: "32", description: "most sequences decoded together" },
  "max-queue": { type: "string", default: "256", description: "most requests waiting; beyond it 429" },
  "max-batch-per-tenant": {
    type: "string",
    description:
      "most running sequences of one tenant the edge names (x-lora-edge-tenant, honoured with an API key; requests without it are one tenant). Default: half of --max-batch",
  },
  "max-queue-per-tenant": {
    type: "string",
    description:
      "most requests of one tenant waiting beyond its running ones (its share of --max-queue; past it 429 while other tenants are admitted). Default: half of --max-queue",
  },
  "max-prefill-tokens": {
    type: "string",
    default: "512",
    description:
      "most prompt tokens one prefill step holds (its rows times its longest chunk, as the engine pads them); longer prompts are prefilled in chunks. Smaller: a shorter wait for other requests' tokens, more steps",
  },
  "tokenizer-pool-size": {
    type: "string",
    default: "2",
    description: "worker threads that render chat templates and tokenize prompts off the event loop",
  },
  "tokenize-deadline-ms": {
    type: "string",
    default: "10000",
    description: "longest one prompt may take to tokenize; past it the request is refused with 413",
  },
  "max-lora-file-bytes": {
    type: "string",
    description:
      "most bytes of an adapter file that load_lora_adapter reads from a local path (and of a PUT upload). Default: every linear of the base at --max-lora-rank in F32, plus 1 MiB",
  },
  threads: { type: "string", description: "onnxruntime intra-op threads" },
  "public-probes": {
    type: "string",
    default: "true",
    description:
      "true or false; true (as vLLM): /health and /metrics need no RUNNER_TOKEN. They show adapter names and labels: use false where others can reach the port",
  },
  ...FLEET_ARGS,
} satisfies ArgsDef;

function bad(flag: string, rule: string, value: unknown): AppError {
  return new AppError("invalid_request", `--${flag} must be ${rule}; got ${JSON.stringify(value)}`, {
    param: flag,
  });
}

function int(flag: keyof typeof RUNNER_ARGS, raw: string | undefined, min: number, max: number): number {
  if (raw === undefined) throw bad(flag, `an integer in ${min}..${max}`, raw);
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) throw bad(flag, `an integer in ${min}..${max}`, raw);
  return n;
}

function hasFlag(argv: string[], flag: string): boolean {
  return argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
}

/** citty keeps only the last of repeated flags, so --lora is collected from argv directly. */
function loraFlags(argv: string[]): string[] {
  const values: string[] = [];
  argv.forEach((arg, i) => {
    if (arg === "--lora") values.push(argv[i + 1] ?? "");
    else if (arg.startsWith("--lora=")) values.push(arg.slice("--lora=".length));
  });
  return values;
}

function parseLora(value: string): StaticLora {
  const at = value.indexOf("=");
  const name = value.slice(0, at);
  const path = value.slice(at + 1);
  if (at <= 0 || path === "") throw bad("lora", "<name>=<peft-dir>", value);
  return { name, path };
}

function oneOf<T extends string>(flag: string, raw: unknown, options: readonly T[]): T {
  if (!options.includes(raw as T)) throw bad(flag, `one of ${options.join(", ")}`, raw);
  return raw as T;
}

export function parseConfig(argv: string[], env: Record<string, string | undefined>): RunnerConfig {
  const scanned = scanArgv(argv, RUNNER_ARGS);
  // citty accepts any flag; a misspelt one must not start a runner that silently lacks the setting.
  refuseRunnerFlags(scanned, Object.keys(RUNNER_ARGS));
  const line = withPositionalModel(argv, scanned.positionals);
  if (!hasFlag(line, "model")) throw bad("model", "a model directory", "");
  const args = parseArgs(line, RUNNER_ARGS);
  if (!args.model) throw bad("model", "a model directory", args.model ?? "");
  const loraFlagged = loraFlags(line).map(parseLora);
  const loraModules = (scanned.values.get("lora-modules") ?? []).map(parseLoraModule);
  const loras = [...loraFlagged, ...loraModules];
  const names = loras.map((l) => l.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined)
    throw bad("lora", "a unique name per adapter (--lora and --lora-modules together)", dup);
  const servedModelNames = servedNames(scanned.values.get("served-model-name") ?? []);
  const baseNames = servedModelNames.length > 0 ? servedModelNames : [basename(resolve(args.model))];
  checkLoraNames(loraFlagged, "lora", baseNames);
  checkLoraNames(loraModules, "lora-modules", baseNames);
  if ((scanned.values.get("enable-lora") ?? []).some((v) => v !== "true")) {
    throw bad("enable-lora", "given without a value (adapters cannot be turned off)", "false");
  }
  const graph =
    args.graph === undefined ? undefined : oneOf("graph", args.graph, ["primitive", "fused"] as const);
  const precision =
    args.precision === undefined
      ? undefined
      : oneOf("precision", args.precision, ["float32", "float16"] as const);
  const quantize =
    args.quantize === undefined ? undefined : oneOf("quantize", args.quantize, ["int4"] as const);
  // the engine refuses these too, but only after loading the model and under its option names; on CPU an
  // absent --graph is the primitive one
  const device = oneOf("device", args.device, ["cpu", "webgpu"] as const);
  const primitive = graph === "primitive" || (graph === undefined && device === "cpu");
  if (primitive && precision === "float16") {
    throw bad("precision", "float32 with --graph primitive (float16 needs --graph fused)", precision);
  }
  if (primitive && quantize !== undefined) {
    throw bad("quantize", "absent with --graph primitive (int4 needs --graph fused)", quantize);
  }
  const maxLoras = int("max-loras", args["max-loras"], 0, 1024);
  if (loras.length > maxLoras)
    throw bad("max-loras", `at least the number of --lora adapters (${loras.length})`, maxLoras);
  const maxCpuLoras =
    args["max-cpu-loras"] === undefined ? null : int("max-cpu-loras", args["max-cpu-loras"], 1, 1_000_000);
  // vLLM refuses it too: the slots are a subset of the host tier
  if (maxCpuLoras !== null && maxCpuLoras < maxLoras)
    throw bad("max-cpu-loras", `>= --max-loras (${maxLoras})`, args["max-cpu-loras"]);
  return {
    model: args.model,
    loras,
    host: args.host ?? "127.0.0.1",
    port: int("port", args.port, 0, 65535),
    device,
    backend: oneOf("backend", args.backend, ["native", "wasm"] as const),
    maxLoras,
    maxCpuLoras,
    adapterCacheBytes: int("adapter-cache-bytes", args["adapter-cache-bytes"], 1, Number.MAX_SAFE_INTEGER),
    maxLoraRank: int("max-lora-rank", args["max-lora-rank"], 1, 1024),
    maxBatch: int("max-batch", args["max-batch"], 1, 4096),
    maxQueue: int("max-queue", args["max-queue"], 0, 1_000_000),
    maxBatchPerTenant: maxBatchPerTenant(args["max-batch-per-tenant"], args["max-batch"]),
    maxQueuePerTenant: maxQueuePerTenant(args["max-queue-per-tenant"], args["max-queue"]),
    maxPrefillTokens: int("max-prefill-tokens", args["max-prefill-tokens"], 1, 1_048_576),
    tokenizerPoolSize: int("tokenizer-pool-size", args["tokenizer-pool-size"], 1, 64),
    tokenizeDeadlineMs: int("tokenize-deadline-ms", args["tokenize-deadline-ms"], 1, 3_600_000),
    maxLoraFileBytes:
      args["max-lora-file-bytes"] === undefined
        ? undefined
        : int("max-lora-file-bytes", args["max-lora-file-bytes"], 1, Number.MAX_SAFE_INTEGER),
    threads: args.threads === undefined ? undefined : int("threads", args.threads, 1, 1024),
    runnerToken: resolveApiKey(args["api-key"], env),
    publicProbes:
      oneOf("public-probes", String(args["public-probes"]), ["true", "false"] as const) === "true",
    servedModelNames,
    maxModelLen: args["max-model-len"] === undefined ? undefined : parseMaxModelLen(args["max-model-len"]),
    graph,
    precision,
    quantize,
    fleet: parseFleetFlags(
      {
        join: args.join,
        "fleet-token-file": args["fleet-token-file"],
        "advertise-url": args["advertise-url"],
        capacity: args.capacity,
      },
      env,
    ),
  };
}

/** At most --max-batch; by default half of it, so one tenant's flood leaves the other half to the rest. */
function maxBatchPerTenant(raw: string | undefined, maxBatchRaw: string | undefined): number {
  const maxBatch = int("max-batch", maxBatchRaw, 1, 4096);
  if (raw === undefined) return Math.ceil(maxBatch / 2);
  return int("max-batch-per-tenant", raw, 1, maxBatch);
}

/** At most --max-queue; by default half of it, so one tenant cannot fill the queue. */
function maxQueuePerTenant(raw: string | undefined, maxQueueRaw: string | undefined): number {
  const maxQueue = int("max-queue", maxQueueRaw, 0, 1_000_000);
  if (raw === undefined) return Math.ceil(maxQueue / 2);
  return int("max-queue-per-tenant", raw, 0, maxQueue);
}

/** vLLM's `vllm serve <model>`: one positional is the model directory, when --model is not also given. */
function withPositionalModel(argv: string[], positionals: string[]): string[] {
  if (positionals.length === 0) return argv;
  if (positionals.length > 1 || hasFlag(argv, "model")) {
    throw bad("model", "given once (as --model <dir> or as the one positional argument)", positionals);
  }
  const model = positionals[0] as string;
  const at = argv.lastIndexOf(model);
  return [...argv.slice(0, at), ...argv.slice(at + 1), "--model", model];
}

function servedNames(values: string[]): string[] {
  for (const name of values) if (name.trim() === "") throw bad("served-model-name", "non-empty names", name);
  const dup = values.find((n, i) => values.indexOf(n) !== i);
  if (dup !== undefined) throw bad("served-model-name", "distinct names", dup);
  return values;
}

/** A static adapter named like the base would never be reached; its parent must be a name the base serves. */
function checkLoraNames(loras: StaticLora[], flag: string, baseNames: string[]): void {
  for (const lora of loras) {
    if (baseNames.includes(lora.name)) {
      throw bad(flag, `an adapter name other than the base model's (${baseNames.join(", ")})`, lora.name);
    }
    if (lora.baseModelName !== undefined && !baseNames.includes(lora.baseModelName)) {
      throw bad(
        "lora-modules",
        `a base_model_name the base answers to (${baseNames.join(", ")}; see --served-model-name)`,
        lora.baseModelName,
      );
    }
  }
}
