// `npm run bench:edge [-- --write BENCHMARKS.md] [--quick]`
// 1. Latency the edge adds: the same chat requests straight to a runner and through `wrangler dev`, closed
//    loop at concurrency 1, 16 and 64 on loopback; once against a stand-in runner that answers at once (the
//    edge's own cost, free of model noise), once against the real runner (max_tokens 1).
// 2. Cold start: first-token time of a never-seen adapter minus a warm one, beside the pure transfer time of
//    its bytes over loopback HTTP. Targets (issue #4): added p50 <= 2 ms, p99 <= 10 ms; cold <= 1.5x + 20 ms.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { writeDemoAdapter } from "../demo-model/adapter.ts";
import { writeDemoModel } from "../demo-model/index.ts";
import { EdgeAdmin, publishSources } from "../lib/dev-setup.ts";
import { applyMigrations, type Child, freePort, startEdge, startRunner } from "../lib/processes.ts";
import { closedLoop, median, percentiles, startSink, startStubRunner } from "./edge-load.ts";

const ADMIN = "bench-operator-token-0123456789";
const RUNNER_TOKEN = "bench-runner-token-0123456789";
const ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

interface Stack {
  edgeUrl: string;
  key: string;
  stop(): Promise<void>;
}

async function startStack(work: string, name: string, runnerUrl: string, model: string): Promise<Stack> {
  const persistTo = join(work, `${name}-state`);
  await applyMigrations(persistTo);
  const edge = await startEdge({
    persistTo,
    port: await freePort(),
    adminToken: ADMIN,
    runnerToken: RUNNER_TOKEN,
    runners: [{ url: runnerUrl }],
  });
  const admin = new EdgeAdmin(edge.url);
  await admin.registerBase(ADMIN, model);
  const key = await admin.tenantKey(ADMIN, "bench");
  return { edgeUrl: edge.url, key, stop: () => edge.stop() };
}

const body = (model: string) =>
  JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 1, temperature: 0 });

function post(url: string, token: string, model: string): () => Promise<Response> {
  return () =>
    fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body(model),
    });
}

interface LatencyRow {
  runner: string;
  model: string;
  concurrency: number;
  direct: ReturnType<typeof percentiles>;
  edge: ReturnType<typeof percentiles>;
  /** Medians of the edge's own `server-timing` spans, e.g. "resolve 3.0, ttft 1.0". */
  spans: string;
}

/** Wraps a sender to collect the `server-timing` spans of its answers. */
function recording(send: () => Promise<Response>, spans: Map<string, number[]>): () => Promise<Response> {
  return async () => {
    const res = await send();
    for (const m of (res.headers.get("server-timing") ?? "").matchAll(/(\w+);dur=([\d.]+)/g)) {
      const list = spans.get(m[1] as string) ?? [];
      list.push(Number(m[2]));
      spans.set(m[1] as string, list);
    }
    return res;
  };
}

async function latency(
  runner: string,
  label: string,
  direct: () => Promise<Response>,
  viaEdge: () => Promise<Response>,
  levels: number[],
  quick: boolean,
): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const c of levels) {
    const total = quick ? Math.max(50, c * 4) : Math.max(300, c * 25);
    await closedLoop(c, Math.min(total, 100), direct);
    await closedLoop(c, Math.min(total, 100), viaEdge);
    // Alternating halves, so drift in a shared machine's load falls on both paths alike.
    const spans = new Map<string, number[]>();
    const edge = recording(viaEdge, spans);
    const d = await closedLoop(c, total / 2, direct);
    const e = await closedLoop(c, total / 2, edge);
    d.push(...(await closedLoop(c, total / 2, direct)));
    e.push(...(await closedLoop(c, total / 2, edge)));
    const spanText = [...spans].map(([name, xs]) => `${name} ${median(xs).toFixed(1)}`).join(", ");
    rows.push({
      runner,
      model: label,
      concurrency: c,
      direct: percentiles(d),
      edge: percentiles(e),
      spans: spanText,
    });
    const last = rows.at(-1) as LatencyRow;
    console.log(
      `${runner} ${label} c=${c}: direct p50 ${last.direct.p50.toFixed(2)} p99 ${last.direct.p99.toFixed(2)} | edge p50 ${last.edge.p50.toFixed(2)} p99 ${last.edge.p99.toFixed(2)} ms`,
    );
  }
  return rows;
}

interface ColdRow {
  adapter: string;
  bytes: number;
  cold: number;
  warm: number;
  transfer: number;
  load: number;
}

async function timed(send: () => Promise<Response>): Promise<{ ms: number; res: Response }> {
  const started = performance.now();
  const res = await send();
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`request failed: ${res.status}`);
  return { ms: performance.now() - started, res };
}

async function coldStarts(stack: Stack, work: string, quick: boolean): Promise<ColdRow[]> {
  const sink = await startSink();
  const kinds = [
    { prefix: "small", rank: 8, targetModules: ["q_proj", "v_proj"] },
    { prefix: "large", rank: 64, targetModules: ALL_LINEAR },
  ];
  const rows: ColdRow[] = [];
  for (const kind of kinds) {
    for (let i = 0; i < (quick ? 2 : 5); i++) {
      const name = `${kind.prefix}-${i}`;
      const dir = join(work, "adapters", name);
      await writeDemoAdapter(dir, {
        seed: 500 + rows.length,
        rank: kind.rank,
        targetModules: kind.targetModules,
      });
      await publishSources(stack.edgeUrl, stack.key, "demo-llama", [{ name, dir }]);
      const send = post(stack.edgeUrl, stack.key, name);
      const cold = await timed(send);
      const warm: number[] = [];
      for (let k = 0; k < 5; k++) warm.push((await timed(send)).ms);
      const bytes = await readFile(join(dir, "adapter_model.safetensors"));
      const transfers: number[] = [];
      for (let k = 0; k < 5; k++) {
        transfers.push((await timed(() => fetch(sink.url, { method: "PUT", body: bytes }))).ms);
      }
      const load = /load;dur=([\d.]+)/.exec(cold.res.headers.get("server-timing") ?? "")?.[1];
      rows.push({
        adapter: name,
        bytes: bytes.length,
        cold: cold.ms,
        warm: median(warm),
        transfer: median(transfers),
        load: Number(load ?? Number.NaN),
      });
    }
  }
  await sink.close();
  return rows;
}

const ms = (x: number) => x.toFixed(2);

function latencyTable(rows: LatencyRow[]): string {
  const lines = [
    "| runner | request | concurrency | direct p50 | edge p50 | added p50 | direct p99 | edge p99 | added p99 | edge spans (median) |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.runner} | ${r.model} | ${r.concurrency} | ${ms(r.direct.p50)} | ${ms(r.edge.p50)} | **${ms(r.edge.p50 - r.direct.p50)}** | ${ms(r.direct.p99)} | ${ms(r.edge.p99)} | **${ms(r.edge.p99 - r.direct.p99)}** | ${r.spans || "–"} |`,
    );
  }
  return lines.join("\n");
}

function coldTable(rows: ColdRow[]): string {
  const lines = [
    "| adapter | bytes | cold TTFT | warm TTFT | cold − warm | transfer | target 1.5×transfer+20 | edge `load` span | met |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const r of rows) {
    const extra = r.cold - r.warm;
    const target = 1.5 * r.transfer + 20;
    lines.push(
      `| ${r.adapter} | ${r.bytes} | ${ms(r.cold)} | ${ms(r.warm)} | **${ms(extra)}** | ${ms(r.transfer)} | ${ms(target)} | ${ms(r.load)} | ${extra <= target ? "yes" : "no"} |`,
    );
  }
  return lines.join("\n");
}

function writeSection(file: string, marker: string, text: string): void {
  const [open, close] = [`<!-- ${marker}:start -->`, `<!-- ${marker}:end -->`];
  const current = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n";
  const section = `${open}\n${text}\n${close}`;
  const at = current.indexOf(open);
  const next =
    at >= 0
      ? current.slice(0, at) + section + current.slice(current.indexOf(close) + close.length)
      : `${current.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
}

async function run(args: { write?: string; quick: boolean }): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "lora-edge-bench-"));
  const model = join(work, "demo-llama");
  await writeDemoModel({ out: model, seed: 0 });
  const stopping: (Child | Stack | { stop(): Promise<void> })[] = [];
  try {
    const stub = await startStubRunner();
    stopping.push({ stop: stub.close });
    const stubStack = await startStack(work, "stub", stub.url, model);
    stopping.push(stubStack);
    const levels = [1, 16, 64];
    // The floor: a request that touches neither D1 nor a runner (wrangler dev's hop and workerd itself).
    const get = (url: string) => () => fetch(url);
    const rows = await latency(
      "none",
      "GET /health",
      get(stub.url),
      get(`${stubStack.edgeUrl}/health`),
      levels,
      args.quick,
    );
    rows.push(
      ...(await latency(
        "stand-in",
        "demo-llama (base)",
        post(stub.url, RUNNER_TOKEN, "demo-llama"),
        post(stubStack.edgeUrl, stubStack.key, "demo-llama"),
        levels,
        args.quick,
      )),
    );
    const runner = await startRunner({
      model,
      port: await freePort(),
      token: RUNNER_TOKEN,
      args: ["--threads", "1"],
    });
    stopping.push(runner);
    const stack = await startStack(work, "real", runner.url, model);
    stopping.push(stack);
    rows.push(
      ...(await latency(
        "demo runner",
        "demo-llama, max_tokens 1",
        post(runner.url, RUNNER_TOKEN, "demo-llama"),
        post(stack.edgeUrl, stack.key, "demo-llama"),
        levels,
        args.quick,
      )),
    );
    const cold = await coldStarts(stack, work, args.quick);
    const text = [
      "## Edge (`npm run bench:edge`)",
      "",
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, load average ${loadavg()[0]?.toFixed(2)} at the end (shared with other work); ` +
        "`wrangler dev` (workerd, local D1 and R2) on loopback, Node's fetch as the client; milliseconds. " +
        "Targets: added p50 ≤ 2 ms and p99 ≤ 10 ms; cold − warm ≤ 1.5 × transfer + 20 ms.",
      "",
      "Latency added by the edge (same requests, straight to the runner vs through the edge):",
      "",
      latencyTable(rows),
      "",
      "Cold start (TTFT = a max_tokens 1 chat completion; transfer = PUT of the same bytes to a sink over loopback):",
      "",
      coldTable(cold),
      "",
      "Reading: `GET /health` is the floor of this local setup (wrangler dev's proxy hop and workerd; no D1, no " +
        "runner). Above it, a chat request pays the API-key lookup and the model resolution in local D1 (the " +
        "`resolve` span; the key lookup precedes it and has no span) and the hop to the runner (`ttft` on the " +
        "stand-in). A cold start adds one `adapter_not_loaded` round trip, the R2 read and the PUT into the runner " +
        "(the `load` span covers all three) and the retry. Meeting p50 <= 2 ms needs the key and model lookups " +
        "cached per isolate for a few seconds (not done: they live in auth.ts and resolveModel) and a machine " +
        "whose loopback calls are not queued behind other work.",
    ].join("\n");
    console.log(`\n${text}`);
    if (args.write) writeSection(args.write, "bench:edge", text);
  } finally {
    for (const s of stopping.reverse()) await s.stop();
    await rm(work, { recursive: true, force: true });
  }
}

const command = defineCommand({
  meta: { name: "bench:edge", description: "Latency the edge adds, and cold-start cost of adapters" },
  args: {
    write: { type: "string", description: "markdown file to write the tables into (e.g. BENCHMARKS.md)" },
    quick: { type: "boolean", default: false, description: "fewer requests (a smoke run)" },
  },
  run: ({ args }) => run(args),
});

await runMain(command);
