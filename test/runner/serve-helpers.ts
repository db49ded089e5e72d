// Shared set-up for the runner ring: the demo model and demo adapters, generated once per file into a
// temp dir (real files, real tokenizer, real weights).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DemoAdapterOptions, writeDemoAdapter } from "../../scripts/demo-model/adapter.ts";
import type { Hono } from "hono";
import type { StaticLora } from "../../gpu-runner/serving/config.ts";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import { buildRunner, type Runner } from "../../gpu-runner/serving/runtime.ts";
import { createApp } from "../../gpu-runner/serving/http/app.ts";
import { writeDemoModel } from "../../scripts/demo-model/index.ts";
import { type ErrorEnvelope, ErrorEnvelopeSchema } from "../../src/contracts/openai.ts";

export interface DemoDirs {
  root: string;
  model: string;
  adapter(name: string, options: DemoAdapterOptions): Promise<string>;
  cleanup(): Promise<void>;
}

export async function makeDemoDirs(seed = 0): Promise<DemoDirs> {
  const root = await mkdtemp(join(tmpdir(), "lora-edge-runner-"));
  const model = join(root, "demo-llama");
  await writeDemoModel({ out: model, seed });
  return {
    root,
    model,
    async adapter(name, options) {
      const dir = join(root, "adapters", name);
      await writeDemoAdapter(dir, options);
      return dir;
    },
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

export interface TestRunner {
  app: Hono;
  runner: Runner;
  /** JSON request helper; adds the bearer token when the runner has one. */
  post(path: string, body: unknown, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export interface TestRunnerOptions {
  loras?: StaticLora[];
  maxLoras?: number;
  maxLoraRank?: number;
  maxBatch?: number;
  maxQueue?: number;
  runnerToken?: string | null;
  backend?: "native" | "wasm";
  /** The adapter tiers' bounds and the slot wait (buildRunner's defaults when absent). */
  tiers?: { maxCpuLoras?: number | null; adapterCacheBytes?: number; slotWaitMs?: number };
  /** The serving bounds (buildRunner's defaults when absent). */
  bounds?: {
    maxBatchPerTenant?: number;
    tokenizerPoolSize?: number;
    tokenizeDeadlineMs?: number;
    maxLoraFileBytes?: number;
  };
}

/** The real runner (engine on onnxruntime CPU, real tokenizer) over a model dir, served in-process. */
export async function startTestRunner(model: string, options: TestRunnerOptions = {}): Promise<TestRunner> {
  const runner = await buildRunner(
    {
      model,
      loras: options.loras ?? [],
      device: "cpu",
      backend: options.backend ?? "native",
      maxLoras: options.maxLoras ?? 4,
      maxLoraRank: options.maxLoraRank ?? 16,
      maxBatch: options.maxBatch ?? 8,
      maxQueue: options.maxQueue ?? 16,
      threads: 1,
      runnerToken: options.runnerToken ?? null,
      ...options.tiers,
      ...options.bounds,
    },
    createEngine,
  );
  const app = createApp(runner.deps);
  const token = options.runnerToken ?? null;
  const post = async (path: string, body: unknown, init: RequestInit = {}) =>
    await app.request(path, {
      method: "POST",
      ...init,
      headers: {
        "content-type": "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(init.headers as Record<string, string> | undefined),
      },
      body: JSON.stringify(body),
    });
  return { app, runner, post, close: () => runner.close() };
}

/** Parses an SSE body into its `data:` payloads, checking the framing on the way. */
export function sseData(text: string): string[] {
  const events = text.split("\n\n");
  if (events.at(-1) !== "")
    throw new Error(`SSE body must end with a blank line; ends with ${JSON.stringify(text.slice(-20))}`);
  return events.slice(0, -1).map((event) => {
    if (!event.startsWith("data: ") || event.includes("\n"))
      throw new Error(`not a single data line: ${JSON.stringify(event)}`);
    return event.slice("data: ".length);
  });
}

/** The error of an error response, checked against the envelope contract. */
export async function errorOf(res: Response): Promise<ErrorEnvelope["error"]> {
  return ErrorEnvelopeSchema.parse(await res.json()).error;
}
