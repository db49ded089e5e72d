// The runner's command line (citty for the flags and --help) and environment, checked in one place so a
// mistake fails at start with the flag, the rule and the value.
import { type ArgsDef, parseArgs } from "citty";
import { refuseUnknownFlags } from "../../cli/flags.ts";
import { AppError } from "../../src/errors.ts";
import type { Backend, Device } from "../engine/types.ts";

export interface StaticLora {
  name: string;
  path: string;
}

export interface RunnerConfig {
  model: string;
  loras: StaticLora[];
  host: string;
  port: number;
  device: Device;
  backend: Backend;
  maxLoras: number;
  maxLoraRank: number;
  maxBatch: number;
  maxQueue: number;
  threads: number | undefined;
  runnerToken: string | null;
  /** /health and /metrics answer without RUNNER_TOKEN. */
  publicProbes: boolean;
}

export const RUNNER_ARGS = {
  model: { type: "string", required: true, description: "Hugging Face model directory" },
  lora: { type: "string", description: "static adapter <name>=<peft-dir>, pinned; repeat for more" },
  host: { type: "string", default: "127.0.0.1", description: "address to listen on" },
  port: { type: "string", default: "8000", description: "port to listen on" },
  device: { type: "string", default: "cpu", description: "execution device: cpu or webgpu" },
  backend: { type: "string", default: "native", description: "onnxruntime build: native or wasm" },
  "max-loras": { type: "string", default: "8", description: "resident adapter slots" },
  "max-lora-rank": { type: "string", default: "64", description: "widest adapter rank a slot holds" },
  "max-batch": { type: "string", default: "32", description: "most sequences decoded together" },
  "max-queue": { type: "string", default: "256", description: "most requests waiting; beyond it 429" },
  threads: { type: "string", description: "onnxruntime intra-op threads" },
  "public-probes": {
    type: "string",
    default: "true",
    description:
      "true or false; true (as vLLM): /health and /metrics need no RUNNER_TOKEN. They show adapter names and labels: use false where others can reach the port",
  },
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
  // citty accepts any flag; a misspelt one must not start a runner that silently lacks the setting.
  refuseUnknownFlags(argv, Object.keys(RUNNER_ARGS));
  if (!hasFlag(argv, "model")) throw bad("model", "a model directory", "");
  const args = parseArgs(argv, RUNNER_ARGS);
  if (!args.model) throw bad("model", "a model directory", args.model ?? "");
  const loras = loraFlags(argv).map(parseLora);
  const names = loras.map((l) => l.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw bad("lora", "a unique name per adapter", dup);
  const maxLoras = int("max-loras", args["max-loras"], 0, 1024);
  if (loras.length > maxLoras)
    throw bad("max-loras", `at least the number of --lora adapters (${loras.length})`, maxLoras);
  return {
    model: args.model,
    loras,
    host: args.host ?? "127.0.0.1",
    port: int("port", args.port, 0, 65535),
    device: oneOf("device", args.device, ["cpu", "webgpu"] as const),
    backend: oneOf("backend", args.backend, ["native", "wasm"] as const),
    maxLoras,
    maxLoraRank: int("max-lora-rank", args["max-lora-rank"], 1, 1024),
    maxBatch: int("max-batch", args["max-batch"], 1, 4096),
    maxQueue: int("max-queue", args["max-queue"], 0, 1_000_000),
    threads: args.threads === undefined ? undefined : int("threads", args.threads, 1, 1024),
    runnerToken: env.RUNNER_TOKEN && env.RUNNER_TOKEN.length > 0 ? env.RUNNER_TOKEN : null,
    publicProbes:
      oneOf("public-probes", String(args["public-probes"]), ["true", "false"] as const) === "true",
  };
}
