// `npm start` on a shared machine: no token on any child's command line (every local user reads those through
// `ps`), no devtools inspector listening unless `--inspector` asks for one, and a data folder (D1, R2, the
// credentials, the edge's variables) only its owner can read.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CREDENTIALS_FILE, EDGE_VARS_FILE } from "../../scripts/lib/dev-setup.ts";
import { type Child, freePort, spawnChild } from "../../scripts/lib/processes.ts";

let data: string;
const started: Child[] = [];

async function npmStart(
  extra: string[] = [],
): Promise<{ child: Child; edgePort: number; runnerPort: number }> {
  const edgePort = await freePort();
  const runnerPort = await freePort();
  const args = [
    "scripts/dev.ts",
    "--data",
    data,
    "--port",
    String(edgePort),
    "--runner-port",
    String(runnerPort),
    // The trained demo is not what this is about; the processes and files are the same without it.
    "--no-train-demo",
    "--demo-adapters",
    "0",
    "--quiet",
    ...extra,
  ];
  const child = spawnChild("npm start", process.execPath, args);
  started.push(child);
  const deadline = Date.now() + 180_000;
  while (!child.log().includes("Publish your own")) {
    if (child.process.exitCode !== null) throw new Error(`npm start exited early:\n${child.log()}`);
    if (Date.now() > deadline) throw new Error(`npm start never got ready:\n${child.log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { child, edgePort, runnerPort };
}

async function stop(child: Child): Promise<void> {
  child.process.kill("SIGTERM");
  expect(await child.exited).toBe(0);
}

/** Every process below `root` (children, their children, …), from /proc. */
function descendants(root: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSyncSafe("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readOrNull(`/proc/${name}/stat`);
    if (stat === null) continue;
    // The command name is in parentheses and may hold spaces: the fields after its last ")" are fixed.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    parents.set(ppid, [...(parents.get(ppid) ?? []), Number(name)]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    for (const child of parents.get(pid) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null; // the process exited meanwhile
  }
}

/** What `ps -o args` shows for a process: its argv, NUL-separated in /proc. */
function argvOf(pid: number): string {
  return (readOrNull(`/proc/${pid}/cmdline`) ?? "").split("\0").join(" ");
}

/** The TCP ports these processes listen on: socket inodes from /proc/<pid>/fd matched to /proc/net/tcp*. */
function listeningPorts(pids: number[]): number[] {
  const inodes = new Set<string>();
  for (const pid of pids) {
    for (const fd of readdirSyncSafe(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        const match = /^socket:\[(\d+)\]$/.exec(target);
        if (match?.[1] !== undefined) inodes.add(match[1]);
      } catch {
        // closed meanwhile
      }
    }
  }
  const ports = new Set<number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of (readOrNull(table) ?? "").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      // cols[1] local address:port (hex), cols[3] state (0A = LISTEN), cols[9] inode
      if (cols[3] !== "0A" || cols[9] === undefined || !inodes.has(cols[9])) continue;
      ports.add(Number.parseInt(cols[1]?.split(":")[1] ?? "0", 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/** Ports that answer as a devtools inspector does (`GET /json/version` names the protocol). */
async function inspectorsAmong(ports: number[]): Promise<number[]> {
  const found: number[] = [];
  for (const port of ports) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/json/version`, {
        signal: AbortSignal.timeout(3_000),
      });
      if ((await res.text()).includes("Protocol-Version")) found.push(port);
    } catch {
      // not HTTP, or not answering: not an inspector either
    }
  }
  return found;
}

/** Every path under `dir` whose mode lets anyone but the owner in. */
async function openToOthers(dir: string): Promise<string[]> {
  const open: string[] = [];
  const self = await lstat(dir);
  if ((self.mode & 0o077) !== 0) open.push(`${dir} ${(self.mode & 0o777).toString(8)}`);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isSymbolicLink()) continue;
    const path = join(entry.parentPath, entry.name);
    const mode = (await lstat(path)).mode & 0o777;
    if ((mode & 0o077) !== 0) open.push(`${path} ${mode.toString(8)}`);
  }
  return open;
}

beforeAll(async () => {
  data = await mkdtemp(join(tmpdir(), "lora-edge-secrets-"));
  // As an older `npm start` left it: the folder and its files readable by everyone.
  await chmod(data, 0o755);
  await mkdir(join(data, "state"), { mode: 0o755 });
  await writeFile(join(data, "state/left-over.txt"), "old", { mode: 0o644 });
  await chmod(join(data, "state/left-over.txt"), 0o644);
});
afterAll(async () => {
  await Promise.all(started.map((c) => c.stop()));
  if (data) await rm(data, { recursive: true, force: true });
});

describe("npm start keeps its secrets private", () => {
  it("puts no token on any command line, opens no inspector, and keeps the data folder 700/600", async () => {
    const { child, edgePort, runnerPort } = await npmStart();
    const credentials = JSON.parse(await readFile(join(data, CREDENTIALS_FILE), "utf8")) as {
      adminToken: string;
      runnerToken: string;
      tenantKey: string;
    };
    const pids = descendants(child.process.pid as number);
    const argvs = pids.map(argvOf).filter((a) => a !== "");
    // The tree is what it should be, so the checks below look at the real processes.
    expect(argvs.some((a) => a.includes("gpu-runner/serving/main.ts"))).toBe(true);
    expect(argvs.some((a) => a.includes("scripts/lib/edge-dev.ts"))).toBe(true);
    expect(argvs.some((a) => a.includes("workerd serve"))).toBe(true);
    for (const argv of argvs) {
      for (const secret of [credentials.adminToken, credentials.runnerToken, credentials.tenantKey]) {
        expect(argv).not.toContain(secret);
      }
      expect(argv).not.toContain("--inspector");
    }

    const ports = listeningPorts(pids);
    expect(ports).toContain(edgePort);
    expect(ports).toContain(runnerPort);
    expect(await inspectorsAmong(ports)).toEqual([]);

    // The edge got its secrets all the same: the operator token opens the admin API.
    const tenants = await fetch(`http://127.0.0.1:${edgePort}/admin/tenants`, {
      method: "POST",
      headers: { authorization: `Bearer ${credentials.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "demo" }),
    });
    expect(tenants.status).toBe(409);

    const vars = await readFile(join(data, EDGE_VARS_FILE), "utf8");
    expect(vars).toContain(`ADMIN_TOKEN='${credentials.adminToken}'`);
    expect(await openToOthers(data)).toEqual([]);
    await stop(child);
  });

  it("opens the inspector when asked with --inspector, and only then", async () => {
    const inspector = await freePort();
    const { child } = await npmStart(["--inspector", String(inspector)]);
    const pids = descendants(child.process.pid as number);
    expect(await inspectorsAmong(listeningPorts(pids))).toContain(inspector);
    await stop(child);
  });
});
