// vLLM's spellings on the runner's command line (`vllm serve` habits): flags that take several values
// (`--lora-modules a=x b=y`, `--served-model-name a b`), the JSON form of `--lora-modules`, `--max-model-len`
// with vLLM's size suffixes, the API key from `--api-key` or VLLM_API_KEY, and a refusal naming each vLLM
// flag this runner does not implement. Pure: config.ts turns argv and env into a RunnerConfig with these.
// Never reads process.env or the disk (docs/conventions.md#composition-roots).
import type { ArgsDef } from "citty";
import { z } from "zod";
import { closestFlag } from "../../cli/flags.ts";
import { ARCHITECTURE_FACTS } from "../engine/model/architectures.ts";
import { formatIssues } from "../../src/contracts/issues.ts";
import { AppError } from "../../src/errors.ts";

/** Flags that take every value up to the next flag and may repeat, as vLLM's `nargs="+"`. */
export const MULTI_VALUE_FLAGS: readonly string[] = ["lora-modules", "served-model-name"];

/**
 * vLLM flags this runner does not implement, with what to do instead. Refused by name at start, so a vLLM
 * command line never starts a runner that silently lacks the setting.
 */
const VLLM_UNIMPLEMENTED: Readonly<Record<string, string>> = {
  "tensor-parallel-size": "a runner drives one device: start more runners and let the edge spread adapters",
  "pipeline-parallel-size": "a runner drives one device: start more runners and let the edge spread adapters",
  "data-parallel-size": "start more runners and let the edge spread adapters over them",
  "gpu-memory-utilization": "the KV cache grows with the running sequences; bound them with --max-batch",
  dtype: "use --precision float32|float16 (float16 needs --graph fused)",
  quantization: "use --quantize int4 (with --graph fused)",
  "max-num-seqs": "use --max-batch",
  "max-num-batched-tokens": "bound a prefill step with --max-prefill-tokens and the batch with --max-batch",
  "kv-cache-dtype": "the KV cache takes the graph's precision (--precision)",
  "block-size": "the KV cache is not paged",
  "swap-space": "the KV cache is not paged",
  "enable-prefix-caching": "prompts are not cached across requests",
  "enable-chunked-prefill": "prompts longer than --max-prefill-tokens are prefilled in chunks",
  "enforce-eager": "there are no CUDA graphs to turn off (onnxruntime sessions)",
  "trust-remote-code": `only the built-in families load (${Object.keys(ARCHITECTURE_FACTS).join(", ")}), with no model code`,
  tokenizer: "the tokenizer is read from --model (tokenizer.json)",
  revision: "--model is a local directory; no hub download",
  "download-dir": "--model is a local directory; no hub download",
  "load-format": "weights load from safetensors only",
  seed: "send seed per request",
  "chat-template": "the template is read from --model (tokenizer_config.json or chat_template.jinja)",
  "generation-config": "generation_config.json in --model always applies (vLLM's auto)",
  "lora-dtype": "adapters take the graph's precision",
  "fully-sharded-loras": "a runner drives one device",
  "max-lora-rank-per-slot": "use --max-lora-rank",
  "speculative-config": "no speculative decoding",
  "enable-auto-tool-choice": "tools are refused by name in requests",
  "tool-call-parser": "tools are refused by name in requests",
  "reasoning-parser": "not implemented by this runner",
  "response-role": "the assistant role is always assistant",
  "allowed-origins": "put the edge (or a proxy) in front for CORS",
  "ssl-keyfile": "serve TLS from the edge or a proxy",
  "ssl-certfile": "serve TLS from the edge or a proxy",
  "root-path": "routes are served at /",
  "uvicorn-log-level": "not implemented by this runner",
  "disable-log-requests": "requests are not logged",
  "enable-log-requests": "requests are not logged",
  "distributed-executor-backend": "a runner is one process",
};

/** vLLM's short spellings: `-tp 2`, `-pp 2`, `-dp 2`, `-q awq`. */
const VLLM_SHORT: Readonly<Record<string, string>> = {
  "-tp": "tensor-parallel-size",
  "-pp": "pipeline-parallel-size",
  "-dp": "data-parallel-size",
  "-q": "quantization",
};

function bad(flag: string, rule: string, value: unknown): AppError {
  return new AppError("invalid_request", `--${flag} must be ${rule}; got ${JSON.stringify(value)}`, {
    param: flag,
  });
}

export interface ScannedArgv {
  /** Every value given to each flag, in order (`--x a --x=b` → ["a", "b"]; `--no-x` → ["false"]). */
  values: Map<string, string[]>;
  /** Tokens that are no flag's value. */
  positionals: string[];
  /** Flags as written, in order, without their values. */
  flags: string[];
}

/**
 * Reads argv as argparse would for `defs`: a boolean takes no value, a multi-value flag takes every token up
 * to the next one starting with "-", any other flag takes the next token.
 */
export function scanArgv(argv: readonly string[], defs: ArgsDef): ScannedArgv {
  const values = new Map<string, string[]>();
  const positionals: string[] = [];
  const flags: string[] = [];
  const push = (name: string, value: string) => values.set(name, [...(values.get(name) ?? []), value]);
  const isBoolean = (name: string) => (defs[name] as { type?: string } | undefined)?.type === "boolean";
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    flags.push(name);
    if (eq !== -1) push(name, arg.slice(eq + 1));
    else if (name.startsWith("no-") && !(name in defs) && name.slice(3) in defs) push(name.slice(3), "false");
    else if (isBoolean(name)) push(name, "true");
    else if (MULTI_VALUE_FLAGS.includes(name)) {
      const start = i;
      while (i + 1 < argv.length && !(argv[i + 1] as string).startsWith("-")) push(name, argv[++i] as string);
      if (i === start) push(name, "");
    } else if (i + 1 < argv.length) push(name, argv[++i] as string);
    else push(name, "");
  }
  return { values, positionals, flags };
}

/**
 * Refuses every flag `known` does not name, a vLLM flag with what to use instead, anything else with the
 * closest known flag; one AppError lists them all.
 */
export function refuseRunnerFlags(scanned: ScannedArgv, known: readonly string[]): void {
  const accepted = new Set([...known, "help", "version"]);
  const problems: string[] = [];
  const vllm = (flag: string, name: string) =>
    `${flag}: a vLLM flag this runner does not implement (${VLLM_UNIMPLEMENTED[name]})`;
  for (const name of scanned.flags) {
    if (accepted.has(name) || (name.startsWith("no-") && accepted.has(name.slice(3)))) continue;
    if (name in VLLM_UNIMPLEMENTED) {
      problems.push(vllm(`--${name}`, name));
      continue;
    }
    const near = closestFlag(name, known);
    problems.push(`--${name}: not a flag of this command${near === null ? "" : `; did you mean --${near}?`}`);
  }
  for (const token of scanned.positionals) {
    const long = VLLM_SHORT[token];
    if (long !== undefined) problems.push(vllm(token, long));
    else if (token.startsWith("-")) problems.push(`${token}: not a flag of this command`);
  }
  if (problems.length > 0) {
    throw new AppError("invalid_request", problems.join("; "), { param: "argv", details: problems });
  }
}

export interface LoraModule {
  name: string;
  path: string;
  /** vLLM's `base_model_name`: the served base name /v1/models gives as this adapter's `parent`. */
  baseModelName?: string;
}

// vLLM's LoRAModulePath: a dataclass, so an unknown key is refused there too
const LoraModuleJsonSchema = z.strictObject({
  name: z.string().min(1, "must not be empty"),
  path: z.string().min(1, "must not be empty"),
  base_model_name: z.string().min(1, "must not be empty").nullish(),
});

/** One `--lora-modules` value: `name=path` or vLLM's JSON `{"name", "path", "base_model_name"}`. */
export function parseLoraModule(value: string): LoraModule {
  if (value.trimStart().startsWith("{")) {
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch (error) {
      throw bad("lora-modules", `name=path or JSON (${(error as Error).message})`, value);
    }
    const parsed = LoraModuleJsonSchema.safeParse(json, { reportInput: true });
    if (!parsed.success) {
      const problems = formatIssues(parsed.error).map(
        (p) => `--lora-modules ${p.replace(/^\(root\): /, "")}`,
      );
      throw new AppError("invalid_request", problems.join("; "), {
        param: "lora-modules",
        details: problems,
      });
    }
    const { name, path, base_model_name: base } = parsed.data;
    return { name, path, ...(base == null ? {} : { baseModelName: base }) };
  }
  const at = value.indexOf("=");
  if (at <= 0 || at === value.length - 1) {
    throw bad("lora-modules", 'name=path or JSON {"name": ..., "path": ..., "base_model_name": ...}', value);
  }
  return { name: value.slice(0, at), path: value.slice(at + 1) };
}

/**
 * `--max-model-len` as vLLM reads it: an integer, or one with a suffix where lowercase is decimal and
 * uppercase binary (`2k` = 2000, `2K` = 2048, `1m` = 1000000, `1M` = 1048576).
 */
export function parseMaxModelLen(raw: string): number {
  const rule = "an integer >= 1, or one with k, K, m or M (2k = 2000, 2K = 2048)";
  const match = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(raw);
  if (!match) throw bad("max-model-len", rule, raw);
  const scale = { "": 1, k: 1e3, K: 1024, m: 1e6, M: 1024 * 1024 }[match[2] as "" | "k" | "K" | "m" | "M"];
  const n = Number(match[1]) * scale;
  if (!Number.isSafeInteger(n) || n < 1) throw bad("max-model-len", rule, raw);
  return n;
}

/**
 * The bearer token: `--api-key`, VLLM_API_KEY (vLLM's spellings) or RUNNER_TOKEN (what the edge sends). Two
 * sources that disagree are refused: a runner would otherwise reject the caller that used the other one.
 */
export function resolveApiKey(
  flag: string | undefined,
  env: Record<string, string | undefined>,
): string | null {
  const sources = [
    ["--api-key", flag],
    ["VLLM_API_KEY", env.VLLM_API_KEY],
    ["RUNNER_TOKEN", env.RUNNER_TOKEN],
  ].filter((s): s is [string, string] => s[1] !== undefined && s[1] !== "");
  if (flag === "") throw bad("api-key", "a non-empty key", flag);
  const distinct = new Set(sources.map(([, v]) => v));
  if (distinct.size > 1) {
    throw new AppError(
      "invalid_request",
      `--api-key: ${sources.map(([s]) => s).join(", ")} are set to different keys; set one of them (or all to the same key)`,
      { param: "api-key" },
    );
  }
  return sources[0]?.[1] ?? null;
}
