// What the HTTP layer is given (docs/conventions.md#composition-roots): everything it touches arrives
// here, so tests can build an app over a real engine and real files without patching globals.

import type { SamplingDefaults } from "../../../src/contracts/openai.ts";
import type { RunnerTokenizer } from "../../engine/tokenizer/index.ts";
import type { PromptTokenizer } from "../../engine/tokenizer/tokenizer-pool.ts";
import type { Engine } from "../../engine/types.ts";
import type { AdapterCache } from "../adapters.ts";
import type { RunnerMetrics } from "../metrics.ts";
import type { Scheduler } from "../scheduler.ts";

export interface AdapterFiles {
  config: unknown;
  weights: Uint8Array;
}

export interface RunnerDeps {
  /** The base model's name as served (`model` selects it). */
  modelId: string;
  /** Every name `model` may use for the base (--served-model-name); the first is `modelId`. */
  servedModelNames: readonly string[];
  /** Static adapters' `parent` in /v1/models when --lora-modules gave a base_model_name (by adapter name). */
  adapterParents: ReadonlyMap<string, string>;
  /** The --model directory as given: vLLM's `root` of the base model in /v1/models. */
  modelPath: string;
  engine: Engine;
  tokenizer: RunnerTokenizer;
  /** Prompts are tokenized through this: off the event loop, with a deadline (tokenizer-pool.ts). */
  prompts: PromptTokenizer;
  scheduler: Scheduler;
  adapters: AdapterCache;
  metrics: RunnerMetrics;
  /** RUNNER_TOKEN; null serves without auth. */
  runnerToken: string | null;
  /** /health and /metrics answer without RUNNER_TOKEN (--public-probes, vLLM's behaviour). */
  publicProbes: boolean;
  baseModelFingerprint: string | null;
  /** Ids that end generation: generation_config's eos ids and the tokenizer's eos token. */
  stopTokenIds: number[];
  /** generation_config.json's sampling defaults, for fields a request leaves out (vLLM's behaviour). */
  samplingDefaults: SamplingDefaults;
  /**
   * Largest adapter upload accepted: every linear of the base at the slots' rank in float32, plus room for the
   * header. Anything larger cannot be a valid adapter for this runner, so it is refused before it is read.
   */
  maxAdapterBytes: number;
  /** What sets maxAdapterBytes, for refusals: the base's bound, or --max-lora-file-bytes. */
  maxAdapterBytesSetting: string;
  /**
   * Reads a PEFT directory for vLLM's `load_lora_adapter {lora_path}`, refusing with 413 a weights file over
   * `maxBytes` before reading it.
   */
  readAdapterDir(path: string, maxBytes: number): Promise<AdapterFiles>;
  startedAt: number;
  version: string;
  /** The drain gate in front of the app (fleet.ts): /ready fails while it drains. Absent: never draining. */
  drain?: { readonly draining: boolean };
}
