// Latency a running experiment adds over a plain alias, end to end through `wrangler dev` (local D1 and R2)
// with an instant stand-in runner, so the edge's own work is what differs. The route's variants both target
// the alias itself: the only extra work is the route lookup (cached per isolate), the assignment, the body
// observer and the exposure written after the response. Requests come in pairs (alias and route, the order
// alternating), each pair followed by a pause, so the exposure write, which by design runs after the
// response, lands in neither measurement. Also times one assignment alone, in process.
// `node scripts/bench/edge-experiment.ts [--requests 500]`; `runExperimentOverhead()` for bench:edge.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RouteConfig } from "../../src/contracts/experiments.ts";
import { assign } from "../../src/experiments/assign.ts";
import { initialRanges } from "../../src/experiments/ranges.ts";
import { writeDemoAdapter } from "../demo-model/adapter.ts";
import { writeDemoModel } from "../demo-model/index.ts";
import { EdgeAdmin } from "../lib/dev-setup.ts";
import { applyMigrations, freePort, ROOT, runToEnd, startEdge } from "../lib/processes.ts";

const ANSWER = JSON.stringify({
  id: "c",
  object: "chat.completion",
  created: 1,
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
});

function stubRunner(): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(ANSWER);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(p * s.length) - 1)] ?? Number.NaN;
};

export interface OverheadResult {
  requests: number;
  alias: { p50: number; p95: number };
  route: { p50: number; p95: number };
  /** Median of (route − alias) over adjacent pairs: the added latency at p50, in ms. */
  addedP50: number;
  /** CPU time of one assignment (hash, range lookup, shadows), in ms. */
  assignMs: number;
}

/** Settle time after each pair: longer than the exposure batch window (20 ms) plus its D1 write. */
const SETTLE_MS = 60;

function assignMs(iterations = 200_000): number {
  const config: RouteConfig = {
    control: "control",
    subject: "user",
    salt: "bench",
    guardrails: null,
    description: null,
    variants: initialRanges([
      { name: "control", weight: 9000 },
      { name: "treatment", weight: 1000 },
    ]).map((v) => ({ ...v, target: "support@prod", shadow: false, cut: null })),
  };
  let sink = 0;
  const started = performance.now();
  for (let i = 0; i < iterations; i++) sink += assign("bench-bot", config, `user-${i}`).bucket;
  const ms = (performance.now() - started) / iterations;
  return sink >= 0 ? ms : Number.NaN;
}

async function timed(url: string, key: string, body: unknown): Promise<number> {
  const started = performance.now();
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return performance.now() - started;
}

export async function runExperimentOverhead(requests = 500): Promise<OverheadResult> {
  const work = await mkdtemp(join(tmpdir(), "lora-edge-bench-exp-"));
  const runner = await stubRunner();
  const stops: (() => Promise<unknown>)[] = [() => new Promise((r) => runner.close(r))];
  try {
    const model = join(work, "demo-llama");
    await writeDemoModel({ out: model, seed: 0 });
    await writeDemoAdapter(join(work, "support"), { seed: 1 });
    const persistTo = join(work, "state");
    await applyMigrations(persistTo);
    const adminToken = "bench-operator-token-0123456789";
    const edge = await startEdge({
      persistTo,
      port: await freePort(),
      adminToken,
      runnerToken: "bench-runner-token-0123456789",
      runners: [{ url: `http://127.0.0.1:${(runner.address() as AddressInfo).port}` }],
    });
    stops.push(() => edge.stop());
    const admin = new EdgeAdmin(edge.url);
    const base = await admin.registerBase(adminToken, model);
    const key = await admin.tenantKey(adminToken, "bench");
    await runToEnd(
      "publish",
      process.execPath,
      [
        join(ROOT, "scripts/publish-adapter.ts"),
        join(work, "support"),
        "--name",
        "support",
        "--base",
        base,
        "--alias",
        "prod",
      ],
      { EDGE_URL: edge.url, EDGE_TOKEN: key },
    );
    const variants = [
      { name: "control", target: "support@prod", weight: 9000 },
      { name: "treatment", target: "support@prod", weight: 1000 },
    ];
    await admin.expect(
      await admin.call("POST", "/admin/routes", key, { name: "bench-bot", variants }),
      [201],
      "route",
    );

    const url = `${edge.url}/v1/chat/completions`;
    const chat = (model: string, user: string) => ({
      model,
      user,
      messages: [{ role: "user", content: "hi" }],
    });
    for (let i = 0; i < 200; i++) {
      await timed(url, key, chat("support@prod", `w${i}`));
      await timed(url, key, chat("bench-bot", `w${i}`));
    }
    const alias: number[] = [];
    const route: number[] = [];
    for (let i = 0; i < requests; i++) {
      // Which goes first alternates: the first request after a pause pays for waking everything up.
      if (i % 2 === 0) {
        alias.push(await timed(url, key, chat("support@prod", `u${i}`)));
        route.push(await timed(url, key, chat("bench-bot", `u${i}`)));
      } else {
        route.push(await timed(url, key, chat("bench-bot", `u${i}`)));
        alias.push(await timed(url, key, chat("support@prod", `u${i}`)));
      }
      await new Promise((r) => setTimeout(r, SETTLE_MS));
    }
    return {
      requests,
      alias: { p50: percentile(alias, 0.5), p95: percentile(alias, 0.95) },
      route: { p50: percentile(route, 0.5), p95: percentile(route, 0.95) },
      addedP50: percentile(
        route.map((r, i) => r - (alias[i] as number)),
        0.5,
      ),
      assignMs: assignMs(),
    };
  } finally {
    for (const stop of stops.reverse()) await stop();
    await rm(work, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const at = process.argv.indexOf("--requests");
  const requests = at === -1 ? 500 : Number(process.argv[at + 1]);
  const r = await runExperimentOverhead(requests);
  const ms = (x: number) => `${x.toFixed(3)} ms`;
  console.log(
    `experiment overhead over ${r.requests} alternating pairs (wrangler dev, local D1, instant runner)`,
  );
  console.log(`  plain alias   p50 ${ms(r.alias.p50)}  p95 ${ms(r.alias.p95)}`);
  console.log(`  running route p50 ${ms(r.route.p50)}  p95 ${ms(r.route.p95)}`);
  console.log(`  added at p50 (median pair difference): ${ms(r.addedP50)}  target <= 0.200 ms`);
  console.log(`  one assignment (in process): ${(r.assignMs * 1000).toFixed(2)} µs`);
}
