// A fleet that grows and shrinks under traffic, on this machine: real `wrangler dev` with local D1 and R2 and
// no static runners (RUNNERS=[]), real runner processes on the demo model that join with a fleet key. While
// closed-loop traffic flows: 4 runners join, 4 more join, one is drained by the operator, one is SIGKILLed,
// two new ones join. Measured: requests lost, adapter loads, load spread, join → first request served, and
// drain → exit. `npm run bench:fleet` prints it; test/e2e/fleet-grows-and-shrinks-under-traffic.test.ts
// holds its goals. Every process it starts is stopped (whole process groups), also on failure.
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PoolEntry } from "../../src/contracts/fleet.ts";
import { makeDemoAdapter } from "../demo-model/adapter.ts";
import { writeDemoModel } from "../demo-model/index.ts";
import { EdgeAdmin } from "../lib/dev-setup.ts";
import {
  applyMigrations,
  type Child,
  freePort,
  spawnChild,
  startEdge,
  waitUntilReady,
} from "../lib/processes.ts";

export interface FleetScenarioOptions {
  /** Adapters published (default 16). */
  adapters?: number;
  /** Concurrent closed-loop clients (default 6). */
  clients?: number;
  /** Edge lease (ms), so a SIGKILLed runner lapses soon (default 3000). */
  leaseMs?: number;
  /** Each phase's length under traffic (ms, default 6000). */
  phaseMs?: number;
  log?: (line: string) => void;
}

export interface FleetScenarioResult {
  adapters: number;
  requests: number;
  /** Requests answered other than 200 (every request here is unstreamed: none had started streaming). */
  lost: number;
  lostSamples: string[];
  /** Adapter loads while 4 runners served steady traffic, from cold. */
  steadyLoads: number;
  /** Adapter loads over the whole run, every runner counted (the drained and killed ones before they left). */
  totalLoads: number;
  /** Max over runners of mean in-flight, divided by the mean over runners (1 is perfectly even). */
  spread: number;
  /** Per joined runner: ms from its join being listed to its first request served. */
  joinToFirstMs: number[];
  /** ms from POST /admin/runners/{id}/drain to the runner's exit. */
  drainToExitMs: number;
  drainExit: number | string;
  members: number;
  /** Members the edge still lists once the killed one's lease lapsed. */
  finalMembers: number;
}

interface Runner {
  child: Child;
  url: string;
  id: string | null;
  joinedAt: number;
  firstServedMs: number | null;
  loadsAtExit: number | null;
  inFlightSamples: number[];
}

const ADMIN = "fleet-operator-token-0123456789";
const RUNNER_TOKEN = "fleet-runner-token-0123456789";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function metrics(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${RUNNER_TOKEN}` } });
  const out = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const name = line.split(/[ {]/)[0] as string;
    out.set(name, (out.get(name) ?? 0) + Number(line.split(" ").at(-1)));
  }
  return out;
}

export async function runFleetScenario(options: FleetScenarioOptions = {}): Promise<FleetScenarioResult> {
  const log = options.log ?? (() => {});
  const adapterCount = options.adapters ?? 16;
  const phaseMs = options.phaseMs ?? 6_000;
  const work = await mkdtemp(join(tmpdir(), "lora-edge-fleet-"));
  const children: Child[] = [];
  try {
    const model = join(work, "demo-llama");
    await writeDemoModel({ out: model, seed: 0 });
    const persistTo = join(work, "state");
    await applyMigrations(persistTo);
    const edge = await startEdge({
      persistTo,
      port: await freePort(),
      adminToken: ADMIN,
      runnerToken: RUNNER_TOKEN,
      runners: [],
      vars: { FLEET_LEASE_MS: String(options.leaseMs ?? 3_000) },
    });
    children.push(edge);
    const admin = new EdgeAdmin(edge.url);
    const base = await admin.registerBase(ADMIN, model);
    const key = await admin.tenantKey(ADMIN, "acme");
    await admin.expect(
      await admin.call("POST", "/admin/tenants", ADMIN, { name: "ops" }),
      [201, 409],
      "tenant",
    );
    const fleet = (await admin.expect(
      await admin.call("POST", "/admin/keys", ADMIN, { tenant: "ops", name: "fleet", scopes: ["runner"] }),
      [201],
      "fleet key",
    )) as { key: string };

    const names: string[] = [];
    for (let i = 0; i < adapterCount; i++) {
      const a = makeDemoAdapter({ seed: 100 + i, rank: 4 });
      const sha = createHash("sha256").update(a.weights).digest("hex");
      const staged = (await admin.expect(
        await fetch(`${edge.url}/admin/uploads`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${key}`,
            "content-type": "application/octet-stream",
            "x-content-sha256": sha,
          },
          body: a.weights,
        }),
        [201],
        "upload",
      )) as { upload: string };
      const name = `a${i}`;
      await admin.expect(
        await admin.call("POST", `/admin/adapters/${name}/versions`, key, {
          upload: staged.upload,
          base,
          config: a.config,
        }),
        [201],
        `publish ${name}`,
      );
      names.push(name);
    }
    log(`published ${names.length} adapters`);

    const runners: Runner[] = [];
    const listed = async (): Promise<PoolEntry[]> =>
      (
        (await admin.expect(await admin.call("GET", "/admin/runners", ADMIN), [200], "runners")) as {
          data: PoolEntry[];
        }
      ).data;
    const startRunner = async (): Promise<Runner> => {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const child = spawnChild(
        `runner:${port}`,
        process.execPath,
        [
          "gpu-runner/serving/main.ts",
          "--model",
          model,
          "--port",
          String(port),
          "--threads",
          "1",
          "--join",
          edge.url,
        ],
        { env: { RUNNER_TOKEN, FLEET_TOKEN: fleet.key } },
      );
      children.push(child);
      await waitUntilReady(`${url}/health`, child);
      const r: Runner = {
        child,
        url,
        id: null,
        joinedAt: 0,
        firstServedMs: null,
        loadsAtExit: null,
        inFlightSamples: [],
      };
      for (;;) {
        const entry = (await listed()).find((e) => e.url === url);
        if (entry !== undefined) {
          r.id = entry.id;
          r.joinedAt = performance.now();
          break;
        }
        await sleep(50);
      }
      runners.push(r);
      return r;
    };
    const alive = () =>
      runners.filter((r) => r.child.process.exitCode === null && r.child.process.signalCode === null);
    const loadsNow = async () => {
      let sum = 0;
      for (const r of alive())
        sum += (await metrics(r.url).catch(() => new Map())).get("runner_adapter_loads_total") ?? 0;
      return sum;
    };

    // Traffic: closed loop, unstreamed chat, adapters round-robin.
    let stop = false;
    let requests = 0;
    const lostSamples: string[] = [];
    let lost = 0;
    const client = async (c: number) => {
      for (let i = c; !stop; i += options.clients ?? 6) {
        const model = names[i % names.length] as string;
        requests++;
        try {
          const res = await admin.call("POST", "/v1/chat/completions", key, {
            model,
            messages: [{ role: "user", content: "Where is my parcel?" }],
            max_tokens: 6,
            temperature: 0,
          });
          const text = await res.text();
          if (res.status !== 200) {
            lost++;
            if (lostSamples.length < 5) lostSamples.push(`${res.status} ${text.slice(0, 200)}`);
          }
        } catch (error) {
          lost++;
          if (lostSamples.length < 5) lostSamples.push(String(error));
        }
      }
    };
    // Samples each runner's in-flight work and notices its first served request.
    const sampler = (async () => {
      while (!stop) {
        await Promise.all(
          alive().map(async (r) => {
            const m = await metrics(r.url).catch(() => null);
            if (m === null) return;
            r.inFlightSamples.push(
              (m.get("runner_running_sequences") ?? 0) + (m.get("runner_queue_depth") ?? 0),
            );
            if (r.firstServedMs === null && (m.get("runner_requests_total") ?? 0) > 0)
              r.firstServedMs = performance.now() - r.joinedAt;
          }),
        );
        await sleep(100);
      }
    })();

    for (let i = 0; i < 4; i++) await startRunner();
    log("4 runners joined; traffic starts");
    const traffic = Promise.all(Array.from({ length: options.clients ?? 6 }, (_, c) => client(c)));
    await sleep(phaseMs);
    const steadyLoads = await loadsNow();
    log(`steady phase on 4 runners: ${steadyLoads} adapter loads for ${names.length} adapters`);

    for (let i = 0; i < 4; i++) await startRunner();
    log("8 runners");
    await sleep(phaseMs);

    const drained = runners[1] as Runner;
    drained.loadsAtExit = (await metrics(drained.url)).get("runner_adapter_loads_total") ?? 0;
    const drainStarted = performance.now();
    await admin.expect(await admin.call("POST", `/admin/runners/${drained.id}/drain`, ADMIN), [202], "drain");
    const drainExit = await drained.child.exited;
    const drainToExitMs = performance.now() - drainStarted;
    log(`drained runner exited (${drainExit}) ${Math.round(drainToExitMs)} ms after the drain request`);

    const killed = runners[2] as Runner;
    killed.loadsAtExit = (await metrics(killed.url)).get("runner_adapter_loads_total") ?? 0;
    await killed.child.kill();
    log("one runner SIGKILLed");
    await sleep(500);
    for (let i = 0; i < 2; i++) await startRunner();
    log("two new runners joined");
    await sleep(Math.max(phaseMs, (options.leaseMs ?? 3_000) + 1_000));
    stop = true;
    await traffic;
    await sampler;
    const totalLoads = (await loadsNow()) + (drained.loadsAtExit ?? 0) + (killed.loadsAtExit ?? 0);
    const finalMembers = (await listed()).length;

    const means = runners
      .filter((r) => r.inFlightSamples.length > 0)
      .map((r) => r.inFlightSamples.reduce((a, b) => a + b, 0) / r.inFlightSamples.length);
    const mean = means.reduce((a, b) => a + b, 0) / Math.max(1, means.length);
    return {
      adapters: names.length,
      requests,
      lost,
      lostSamples,
      steadyLoads,
      totalLoads,
      spread: mean === 0 ? 0 : Math.max(...means) / mean,
      joinToFirstMs: runners.map((r) => r.firstServedMs ?? Number.NaN),
      drainToExitMs,
      drainExit,
      members: runners.length,
      finalMembers,
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await rm(work, { recursive: true, force: true });
  }
}
