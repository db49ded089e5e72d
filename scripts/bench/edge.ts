// `npm run bench:edge [-- --write BENCHMARKS.md] [--quick] [--rounds 3] [--skip-real]`
// 1. Latency the edge adds: the same chat requests straight to a runner and through `wrangler dev`, closed
//    loop at concurrency 1, 16 and 64 on loopback; against a stand-in runner that answers at once (the
//    edge's own cost, free of model noise) in several rounds, beside a bare proxy Worker in front of the same
//    stand-in (the floor: wrangler dev's hop and workerd's fetch); once against the real runner (max_tokens 1).
// 2. Cold start: first-token time of a never-seen adapter minus a warm one, beside the pure transfer time of
//    its bytes over loopback HTTP. Targets: added p50 <= 2 ms, p99 <= 10 ms; cold <= 1.5x + 20 ms.
// 3. What a running experiment adds over a plain alias (target: <= 0.2 ms at p50), edge-experiment.ts.
// `--skip-real` leaves out the real runner and cold starts (a quick before/after of the edge's own path).
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { writeDemoAdapter } from "../demo-model/adapter.ts";
import { writeDemoModel } from "../demo-model/index.ts";
import { EdgeAdmin, publishSources } from "../lib/dev-setup.ts";
import { applyMigrations, type Child, freePort, startEdge, startRunner } from "../lib/processes.ts";
import { coldStarts } from "./edge-cold.ts";
import { type OverheadResult, runExperimentOverhead } from "./edge-experiment.ts";
import { startFloor } from "./edge-floor.ts";
import { closedLoop, median, percentiles, post, startStubRunner } from "./edge-load.ts";
import {
  type ColdRow,
  coldTable,
  experimentTable,
  type LatencyRow,
  latencyTable,
  writeSection,
} from "./edge-report.ts";

const ADMIN = "bench-operator-token-0123456789";
const RUNNER_TOKEN = "bench-runner-token-0123456789";
const LEVELS = [1, 16, 64];

type Stoppable = Child | Stack | { stop(): Promise<void> };

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

interface Paths {
  direct: () => Promise<Response>;
  viaEdge: () => Promise<Response>;
  /** The same request through the bare proxy Worker, when there is one. */
  floor?: () => Promise<Response>;
}

async function latency(
  runner: string,
  label: string,
  paths: Paths,
  levels: number[],
  quick: boolean,
): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  const senders = (edge: () => Promise<Response>) => [
    paths.direct,
    edge,
    ...(paths.floor ? [paths.floor] : []),
  ];
  for (const c of levels) {
    const total = quick ? Math.max(50, c * 4) : Math.max(300, c * 25);
    for (const send of senders(paths.viaEdge)) await closedLoop(c, Math.min(total, 100), send);
    // Alternating halves, so drift in a shared machine's load falls on every path alike.
    const spans = new Map<string, number[]>();
    const order = senders(recording(paths.viaEdge, spans));
    const samples: number[][] = order.map(() => []);
    for (let half = 0; half < 2; half++) {
      for (const [i, send] of order.entries()) samples[i]?.push(...(await closedLoop(c, total / 2, send)));
    }
    const [d = [], e = [], f] = samples;
    const spanText = [...spans].map(([name, xs]) => `${name} ${median(xs).toFixed(1)}`).join(", ");
    const row: LatencyRow = {
      runner,
      model: label,
      concurrency: c,
      direct: percentiles(d),
      edge: percentiles(e),
      floor: f === undefined ? null : percentiles(f),
      spans: spanText,
    };
    rows.push(row);
    const floorText = row.floor
      ? ` | floor p50 ${row.floor.p50.toFixed(2)} p99 ${row.floor.p99.toFixed(2)}`
      : "";
    console.log(
      `${runner} ${label} c=${c}: direct p50 ${row.direct.p50.toFixed(2)} p99 ${row.direct.p99.toFixed(2)} | edge p50 ${row.edge.p50.toFixed(2)} p99 ${row.edge.p99.toFixed(2)}${floorText} ms`,
    );
  }
  return rows;
}

interface Args {
  write?: string;
  quick: boolean;
  rounds: string;
  "skip-real": boolean;
}

/** The edge's own path: a stand-in runner, the floor Worker beside it, several rounds. */
async function standIn(
  work: string,
  model: string,
  args: Args,
  stopping: Stoppable[],
): Promise<LatencyRow[]> {
  const stub = await startStubRunner();
  stopping.push({ stop: stub.close });
  const stack = await startStack(work, "stub", stub.url, model);
  stopping.push(stack);
  const floor = await startFloor(work, stub.url);
  stopping.push(floor);
  const adapterDir = join(work, "adapters", "support");
  await writeDemoAdapter(adapterDir, { seed: 400, rank: 8, targetModules: ["q_proj", "v_proj"] });
  await publishSources(stack.edgeUrl, stack.key, "demo-llama", [{ name: "support", dir: adapterDir }]);
  const rounds = Number(args.rounds);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new Error(`--rounds must be an integer >= 1; got ${args.rounds}`);
  const get = (url: string) => () => fetch(url);
  const rows: LatencyRow[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.log(`round ${round} of ${rounds}`);
    // A request that touches neither D1 nor a runner: wrangler dev's hop and workerd itself.
    rows.push(
      ...(await latency(
        "none",
        "GET /health",
        { direct: get(stub.url), viaEdge: get(`${stack.edgeUrl}/health`) },
        LEVELS,
        args.quick,
      )),
    );
    for (const name of ["demo-llama", "support@prod"]) {
      const paths = {
        direct: post(stub.url, RUNNER_TOKEN, name),
        viaEdge: post(stack.edgeUrl, stack.key, name),
        floor: post(floor.url, RUNNER_TOKEN, name),
      };
      const label = name === "demo-llama" ? "demo-llama (base)" : "support@prod (adapter alias)";
      rows.push(...(await latency("stand-in", label, paths, LEVELS, args.quick)));
    }
  }
  return rows;
}

async function realRunner(work: string, model: string, args: Args, stopping: Stoppable[]) {
  const runner = await startRunner({
    model,
    port: await freePort(),
    token: RUNNER_TOKEN,
    args: ["--threads", "1"],
  });
  stopping.push(runner);
  const stack = await startStack(work, "real", runner.url, model);
  stopping.push(stack);
  const paths = {
    direct: post(runner.url, RUNNER_TOKEN, "demo-llama"),
    viaEdge: post(stack.edgeUrl, stack.key, "demo-llama"),
  };
  const rows = await latency("demo runner", "demo-llama, max_tokens 1", paths, LEVELS, args.quick);
  return { rows, cold: await coldStarts(stack, work, args.quick) };
}

function report(rows: LatencyRow[], cold: ColdRow[] | null, experiment: OverheadResult): string {
  return [
    "## Edge (`npm run bench:edge`)",
    "",
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, load average ${loadavg()[0]?.toFixed(2)} at the end (shared with other work); ` +
      "`wrangler dev` (workerd, local D1 and R2) on loopback, Node's fetch as the client; milliseconds. " +
      "Targets: added p50 ≤ 2 ms and p99 ≤ 10 ms; cold − warm ≤ 1.5 × transfer + 20 ms; a running experiment " +
      "≤ 0.2 ms over a plain alias at p50.",
    "",
    "Latency added by the edge (same requests straight to the runner, through the edge, and through the floor: " +
      "a bare Worker that only proxies, under the same `wrangler dev`). Each figure is the median over the rounds; " +
      'the spread is the lowest and highest added p50 of the rounds. "over floor" is what our code adds:',
    "",
    latencyTable(rows),
    "",
    ...(cold === null
      ? []
      : [
          "Cold start (TTFT = a max_tokens 1 chat completion; transfer = PUT of the same bytes to a sink over loopback):",
          "",
          coldTable(cold),
          "",
        ]),
    "A running experiment over a plain alias (`scripts/bench/edge-experiment.ts`: both variants target the alias, " +
      "pairs of requests alternating in order, one process):",
    "",
    experimentTable(experiment),
    "",
    "Reading: `GET /health` touches neither D1 nor a runner; the floor Worker adds the hop to the runner. Above " +
      "the floor, a warm chat request pays what our code does per request: the API key and the model resolved " +
      "from the isolate's caches (`workers/edge/registry/model-cache.ts`, `workers/edge/tenants/key-cache.ts`, the `resolve` span), the route lookup, and the body and " +
      "stream handling. A cold start adds one `adapter_not_loaded` round trip, the R2 read and the PUT into the " +
      "runner (the `load` span covers all three) and the retry.",
  ].join("\n");
}

async function run(args: Args): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "lora-edge-bench-"));
  const model = join(work, "demo-llama");
  await writeDemoModel({ out: model, seed: 0 });
  const stopping: Stoppable[] = [];
  try {
    const rows = await standIn(work, model, args, stopping);
    let cold: ColdRow[] | null = null;
    if (!args["skip-real"]) {
      const real = await realRunner(work, model, args, stopping);
      rows.push(...real.rows);
      cold = real.cold;
    }
    for (const s of stopping.reverse().splice(0)) await s.stop();
    // Alone, after the others have stopped: it starts its own wrangler dev and stand-in.
    const experiment = await runExperimentOverhead(args.quick ? 100 : 300);
    const text = report(rows, cold, experiment);
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
    rounds: { type: "string", default: "3", description: "rounds of the stand-in measurements" },
    "skip-real": {
      type: "boolean",
      default: false,
      description: "leave out the real runner and cold starts",
    },
  },
  run: ({ args }) => run(args),
});

await runMain(command);
