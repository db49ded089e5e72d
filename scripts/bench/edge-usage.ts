// What usage metering and limits add to the edge's hot path, over the edge with both off: the tree before
// they were built (the parent of the commit that added the tenants' meter, exported with `git archive`), or
// `--baseline <dir>`. Both edges run under `wrangler dev` (local D1 and R2, and the tenants' meters in the new
// one) in front of one instant stand-in runner. Requests for the base model go to the baseline edge and, in
// turn, to the new edge with a key and tenant without limits (metering only: the record goes to the meter in
// waitUntil) or with a key under limits too high to be reached (admission from the isolate's lease on the
// tenant's buckets, limits/allowance-lease.ts). A third phase pairs the two keys on the new edge itself,
// which takes the noise between two processes out of the limits' figure. Closed loops at concurrency 1 and
// 16, in pairs in alternating order; an added p50 is the median of the per-pair differences.
// `node scripts/bench/edge-usage.ts [--requests 400] [--baseline DIR]`
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeDemoModel } from "../demo-model/index.ts";
import { EdgeAdmin } from "../lib/dev-setup.ts";
import * as here from "../lib/processes.ts";
import { median, percentiles, post, startStubRunner } from "./edge-load.ts";

const ADMIN = "bench-operator-token-0123456789";
const RUNNER_TOKEN = "bench-runner-token-0123456789";

type Processes = Pick<typeof here, "applyMigrations" | "startEdge" | "freePort">;

async function startEdgeFrom(lib: Processes, work: string, name: string, runnerUrl: string) {
  const persistTo = join(work, `${name}-state`);
  await lib.applyMigrations(persistTo);
  return await lib.startEdge({
    persistTo,
    port: await lib.freePort(),
    adminToken: ADMIN,
    runnerToken: RUNNER_TOKEN,
    runners: [{ url: runnerUrl }],
  });
}

async function key(admin: EdgeAdmin, tenant: string, limits?: Record<string, number>): Promise<string> {
  await admin.expect(await admin.call("POST", "/admin/tenants", ADMIN, { name: tenant }), [201], "tenant");
  const body = { tenant, name: "bench", scopes: ["infer"], ...(limits ? { limits } : {}) };
  const created = (await admin.expect(
    await admin.call("POST", "/admin/keys", ADMIN, body),
    [201],
    "key",
  )) as {
    key: string;
  };
  return created.key;
}

export interface UsageOverheadRow {
  concurrency: number;
  rounds: number;
  today: number;
  metered: number;
  limited: number;
  /** Median per-round differences over the baseline edge, ms. */
  addedMetered: number;
  addedLimited: number;
  /** Median per-round difference of the limited key over the metered one, on the new edge. */
  limitsOverMetering: number;
}

async function rounds(concurrency: number, total: number, senders: (() => Promise<Response>)[]) {
  const samples: number[][] = senders.map(() => []);
  let issued = 0;
  const timed = async (send: () => Promise<Response>) => {
    const started = performance.now();
    const res = await send();
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`request failed: ${res.status}`);
    return performance.now() - started;
  };
  const client = async () => {
    while (issued < total) {
      const round = issued++;
      // The order rotates, so being first after the client's last request favours no path.
      for (let j = 0; j < senders.length; j++) {
        const i = (round + j) % senders.length;
        samples[i]?.push(await timed(senders[i] as () => Promise<Response>));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  return samples;
}

export async function runUsageOverhead(requests: number, baseline?: string): Promise<UsageOverheadRow[]> {
  const work = await mkdtemp(join(tmpdir(), "lora-edge-bench-usage-"));
  const stops: (() => Promise<unknown>)[] = [];
  try {
    let todayRoot = baseline;
    if (todayRoot === undefined) {
      todayRoot = join(work, "today");
      execFileSync("mkdir", ["-p", todayRoot]);
      const added = execFileSync(
        "git",
        [
          "-C",
          here.ROOT,
          "log",
          "--diff-filter=A",
          "--format=%H",
          "--",
          "workers/edge/usage/tenant-meter.ts",
        ],
        { encoding: "utf8" },
      )
        .trim()
        .split("\n")
        .at(-1);
      if (added === undefined || added === "")
        throw new Error("--baseline: no commit adds workers/edge/usage/tenant-meter.ts; pass --baseline DIR");
      // Reads committed trees only; the working tree and the repository's state are left as they are.
      execFileSync("sh", ["-c", `git -C "${here.ROOT}" archive ${added}^ | tar -x -C "${todayRoot}"`]);
      await symlink(join(here.ROOT, "node_modules"), join(todayRoot, "node_modules"));
    }
    const todayLib = (await import(join(todayRoot, "scripts/lib/processes.ts"))) as Processes;
    const stub = await startStubRunner();
    stops.push(() => stub.close());
    const model = join(work, "demo-llama");
    await writeDemoModel({ out: model, seed: 0 });
    const oldEdge = await startEdgeFrom(todayLib, work, "today", stub.url);
    stops.push(() => oldEdge.stop());
    const newEdge = await startEdgeFrom(here, work, "now", stub.url);
    stops.push(() => newEdge.stop());
    const oldAdmin = new EdgeAdmin(oldEdge.url);
    const newAdmin = new EdgeAdmin(newEdge.url);
    const base = await oldAdmin.registerBase(ADMIN, model);
    await newAdmin.registerBase(ADMIN, model);
    const oldKey = await key(oldAdmin, "bench");
    const meteredKey = await key(newAdmin, "bench");
    const limitedKey = await key(newAdmin, "bench-limited", { requestsPerMinute: 1e9, tokensPerMinute: 1e9 });
    const today = post(oldEdge.url, oldKey, base);
    const metered = post(newEdge.url, meteredKey, base);
    const limited = post(newEdge.url, limitedKey, base);
    const rows: UsageOverheadRow[] = [];
    for (const concurrency of [1, 16]) {
      // Metering and limits are measured in separate phases: at concurrency 16 the meter's admissions share
      // workerd's thread with every other request of the local edge, and would tax the metered path too.
      const pair = async (next: () => Promise<Response>) => {
        await rounds(concurrency, Math.min(100, requests), [today, next]);
        const [t = [], n = []] = await rounds(concurrency, requests, [today, next]);
        return { t, n, added: median(n.map((x, i) => x - (t[i] as number))) };
      };
      const m = await pair(metered);
      const l = await pair(limited);
      await rounds(concurrency, Math.min(100, requests), [metered, limited]);
      const [mm = [], ll = []] = await rounds(concurrency, requests, [metered, limited]);
      rows.push({
        concurrency,
        rounds: m.t.length,
        today: percentiles([...m.t, ...l.t]).p50,
        metered: percentiles(m.n).p50,
        limited: percentiles(l.n).p50,
        addedMetered: m.added,
        addedLimited: l.added,
        limitsOverMetering: median(ll.map((x, i) => x - (mm[i] as number))),
      });
    }
    return rows;
  } finally {
    for (const stop of stops.reverse()) await stop();
    await rm(work, { recursive: true, force: true });
  }
}

export function usageTable(rows: UsageOverheadRow[]): string {
  const f = (x: number) => x.toFixed(2);
  return [
    "| conc. | pairs | both off p50 | metered p50 | limited p50 | metering added p50 | metering + limits added p50 | limits over metering, same edge | goal |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${r.concurrency} | ${r.rounds} | ${f(r.today)} | ${f(r.metered)} | ${f(r.limited)} | **${f(r.addedMetered)}** | **${f(r.addedLimited)}** | **${f(r.limitsOverMetering)}** | ≤ 0.30 |`,
    ),
  ].join("\n");
}

if (import.meta.main) {
  const arg = (name: string) => {
    const at = process.argv.indexOf(name);
    return at === -1 ? undefined : process.argv[at + 1];
  };
  const requests = Number(arg("--requests") ?? 400);
  if (!Number.isInteger(requests) || requests < 1)
    throw new Error(`--requests must be an integer >= 1; got ${arg("--requests")}`);
  const rows = await runUsageOverhead(requests, arg("--baseline"));
  console.log(usageTable(rows));
}
