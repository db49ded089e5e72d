// The whole pipeline for e2e tests, started the way `npm start` starts it (scripts/lib/processes.ts): real
// runner processes on the seeded demo model, real `wrangler dev` with local D1 and R2 in a temp folder, the
// operator's bootstrap, and the real publish script. One pipeline per test file keeps the ring fast.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DemoAdapterOptions, writeDemoAdapter } from "../../../scripts/demo-model/adapter.ts";
import { writeDemoModel } from "../../../scripts/demo-model/index.ts";
import { EdgeAdmin } from "../../../scripts/lib/dev-setup.ts";
import {
  applyMigrations,
  type EdgeProcess,
  freePort,
  type RunnerProcess,
  runToEnd,
  startEdge,
  startRunner,
} from "../../../scripts/lib/processes.ts";

export interface PipelineOptions {
  /** Runner processes (default 2). */
  runners?: number;
  /** Extra flags for every runner. */
  runnerArgs?: string[];
  /** Extra Worker variables. */
  edgeVars?: Record<string, string>;
}

export interface PublishedVersion {
  name: string;
  version: number;
  adapterId: string;
  weightsSha256: string;
}

export interface Pipeline {
  edgeUrl: string;
  edge: EdgeProcess;
  runners: RunnerProcess[];
  adminToken: string;
  runnerToken: string;
  /** The base model id (the model folder's name). */
  base: string;
  tenant: string;
  /** A key of `tenant` with scope admin. */
  tenantKey: string;
  work: string;
  /** Writes a seeded demo PEFT adapter and returns its folder. */
  makeAdapter(name: string, options: DemoAdapterOptions): Promise<string>;
  /** Publishes with `npm run publish-adapter` (the script, as a child process). */
  publish(dir: string, name: string, options?: { key?: string; alias?: string }): Promise<PublishedVersion>;
  /** A new tenant with a key of scope admin; returns the key. */
  newTenant(name: string): Promise<string>;
  /** A JSON request to the edge. */
  edgeCall(method: string, path: string, token: string, body?: unknown): Promise<Response>;
  /** A JSON request straight to a runner, with the runner token. */
  runnerCall(runner: RunnerProcess, method: string, path: string, body?: unknown): Promise<Response>;
  /** Sum of `runner_adapter_loads_total` over the runners still alive. */
  adapterLoads(): Promise<number>;
  stop(): Promise<void>;
}

async function metric(res: Response, name: string): Promise<number> {
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name} `));
  // a counter never incremented has no sample line
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

export async function startPipeline(options: PipelineOptions = {}): Promise<Pipeline> {
  const work = await mkdtemp(join(tmpdir(), "lora-edge-pipeline-"));
  const model = join(work, "demo-llama");
  await writeDemoModel({ out: model, seed: 0 });
  const adminToken = "e2e-operator-token-0123456789";
  const runnerToken = "e2e-runner-token-0123456789";
  const started: { stop(): Promise<void> }[] = [];
  const stop = async () => {
    await Promise.all(started.map((c) => c.stop()));
    await rm(work, { recursive: true, force: true });
  };
  try {
    const runners = await Promise.all(
      Array.from({ length: options.runners ?? 2 }, async () => {
        const runner = await startRunner({
          model,
          port: await freePort(),
          token: runnerToken,
          args: ["--threads", "1", ...(options.runnerArgs ?? [])],
        });
        started.push(runner);
        return runner;
      }),
    );
    const persistTo = join(work, "state");
    await applyMigrations(persistTo);
    const edge = await startEdge({
      persistTo,
      port: await freePort(),
      adminToken,
      runnerToken,
      runners: runners.map((r) => ({ url: r.url })),
      vars: options.edgeVars,
    });
    started.push(edge);
    const admin = new EdgeAdmin(edge.url);
    const base = await admin.registerBase(adminToken, model);
    const tenant = "acme";
    const tenantKey = await admin.tenantKey(adminToken, tenant);
    const alive = new Set(runners);
    for (const r of runners) void r.exited.then(() => alive.delete(r));

    const pipeline: Pipeline = {
      edgeUrl: edge.url,
      edge,
      runners,
      adminToken,
      runnerToken,
      base,
      tenant,
      tenantKey,
      work,
      async makeAdapter(name, adapterOptions) {
        const dir = join(work, "adapters", name);
        await writeDemoAdapter(dir, adapterOptions);
        return dir;
      },
      async publish(dir, name, o = {}) {
        const args = ["scripts/publish-adapter.ts", dir, "--name", name, "--base", base, "--json"];
        if (o.alias) args.push("--alias", o.alias);
        const out = await runToEnd(`publish ${name}`, process.execPath, args, {
          EDGE_URL: edge.url,
          EDGE_TOKEN: o.key ?? tenantKey,
        });
        const json = out.split("\n").find((l) => l.startsWith("{"));
        if (json === undefined) throw new Error(`publish printed no JSON:\n${out}`);
        return JSON.parse(json) as PublishedVersion;
      },
      newTenant: (name) => admin.tenantKey(adminToken, name),
      edgeCall: (method, path, token, body) => admin.call(method, path, token, body),
      runnerCall: (runner, method, path, body) =>
        fetch(`${runner.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${runnerToken}`, "content-type": "application/json" },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        }),
      async adapterLoads() {
        const counts = await Promise.all(
          [...alive].map(async (r) =>
            metric(await pipeline.runnerCall(r, "GET", "/metrics"), "runner_adapter_loads_total"),
          ),
        );
        return counts.reduce((a, b) => a + b, 0);
      },
      stop,
    };
    return pipeline;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The `data:` payloads of an SSE body, in order. */
export function sseEvents(text: string): string[] {
  return text
    .split(/\r?\n\r?\n/)
    .map((e) => e.trim())
    .filter((e) => e !== "")
    .map((e) => e.replace(/^data: ?/, ""));
}

/** Concatenated `delta.content` of chat completion chunks. */
export function streamedContent(events: string[]): string {
  return events
    .filter((e) => e !== "[DONE]")
    .map((e) => JSON.parse(e) as { choices?: { delta?: { content?: string } }[] })
    .map((c) => c.choices?.[0]?.delta?.content ?? "")
    .join("");
}
