// Child processes of the local pipeline: runners (`gpu-runner/serving/main.ts`) and the edge (wrangler's dev
// server with local D1 and R2, edge-dev.ts). `npm start`, the e2e tests and the edge benchmark all start them
// through here, so what the tests exercise is what users run. Each child leads its own process group: wrangler starts workerd
// beneath it, and stopping the group stops both. Secrets never go on a child's argv, which every local user
// can read through `ps`: the runner takes RUNNER_TOKEN from its environment, the edge its variables from a
// mode-600 file.
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "../..");
// Run with this process's Node: wrangler needs Node 22, which may not be the `node` on PATH.
export const WRANGLER = join(ROOT, "node_modules/wrangler/bin/wrangler.js");
/** The last this many characters of a child's output are kept for error messages. */
const LOG_TAIL = 20_000;

export interface Child {
  name: string;
  process: ChildProcess;
  /** Recent output (stdout and stderr). */
  log(): string;
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  exited: Promise<number | string>;
  /** SIGTERM to the whole group, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL to the whole group at once: a crash, as tests need one. */
  kill(): Promise<void>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** Also copy the child's output to this process's stdout, prefixed with its name. */
  echo?: boolean;
}

export function spawnChild(name: string, cmd: string, args: string[], options: SpawnOptions = {}): Child {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  let tail = "";
  const take = (data: Buffer) => {
    tail = (tail + data.toString()).slice(-LOG_TAIL);
    if (options.echo) {
      for (const line of data.toString().split("\n"))
        if (line.trim() !== "") console.log(`[${name}] ${line}`);
    }
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const signalGroup = (signal: NodeJS.Signals, evenAfterExit = false) => {
    if ((done && !evenAfterExit) || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is gone already
    }
  };
  return {
    name,
    process: child,
    log: () => tail,
    exited,
    async stop(graceMs = 5_000) {
      signalGroup("SIGTERM");
      const timer = setTimeout(() => signalGroup("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
      // workerd may outlive wrangler by a moment; the group outlives its leader, so this still reaches it.
      signalGroup("SIGKILL", true);
    },
    async kill() {
      signalGroup("SIGKILL");
      await exited;
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Polls `url` until it answers 2xx; fails early, with the child's log, if the child exits first. */
export async function waitUntilReady(url: string, child: Child, init: RequestInit = {}, timeoutMs = 120_000) {
  let exited: number | string | null = null;
  void child.exited.then((code) => {
    exited = code;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== null)
      throw new Error(`${child.name} exited (${exited}) before it was ready:\n${child.log()}`);
    try {
      if ((await fetch(url, init)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${child.name} did not answer at ${url} within ${timeoutMs} ms:\n${child.log()}`);
}

export interface RunnerOptions {
  model: string;
  port: number;
  token: string;
  name?: string;
  /** More runner flags, e.g. ["--lora", "demo-0=dir", "--max-loras", "4"]. */
  args?: string[];
  echo?: boolean;
}

export interface RunnerProcess extends Child {
  url: string;
  port: number;
}

export async function startRunner(options: RunnerOptions): Promise<RunnerProcess> {
  const args = [
    "gpu-runner/serving/main.ts",
    "--model",
    options.model,
    "--port",
    String(options.port),
    ...(options.args ?? []),
  ];
  const child = spawnChild(options.name ?? `runner:${options.port}`, process.execPath, args, {
    env: { RUNNER_TOKEN: options.token },
    echo: options.echo,
  });
  const url = `http://127.0.0.1:${options.port}`;
  try {
    await waitUntilReady(`${url}/health`, child, { headers: { authorization: `Bearer ${options.token}` } });
  } catch (error) {
    await child.stop();
    throw error;
  }
  return { ...child, url, port: options.port };
}

/** Runs a command to completion; throws with its output when it fails. */
export async function runToEnd(name: string, cmd: string, args: string[], env: Record<string, string> = {}) {
  const child = spawnChild(name, cmd, args, { env });
  const code = await child.exited;
  if (code !== 0) throw new Error(`${name} failed (${code}):\n${child.log()}`);
  return child.log();
}

// No network: no telemetry, and no fetch of the `Request.cf` placeholder from workers.cloudflare.com.
export const WRANGLER_ENV = {
  CI: "1",
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_LOG: "warn",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};

export async function applyMigrations(persistTo: string): Promise<void> {
  await runToEnd(
    "d1 migrations",
    process.execPath,
    [WRANGLER, "d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo],
    WRANGLER_ENV,
  );
}

export interface EdgeOptions {
  persistTo: string;
  port: number;
  adminToken: string;
  /** The pool as the RUNNERS variable: JSON of [{url, token?, weight?}]. */
  runners: { url: string; token?: string; weight?: number }[];
  runnerToken: string;
  /** More Worker variables (e.g. MAX_LORA_RANK, RUNNER_TIMEOUT_MS). */
  vars?: Record<string, string>;
  /** Where the Worker's variables are written, mode 600 (default: `edge.dev.vars` in `persistTo`). */
  varsFile?: string;
  /** Open wrangler's devtools inspector on this port; off when absent (it runs code in the Worker). */
  inspectorPort?: number;
  echo?: boolean;
}

export interface EdgeProcess extends Child {
  url: string;
}

/** Folders 700 and files 600 under `dir`, `dir` included: D1's and R2's files hold every tenant's data. */
export async function makePrivate(dir: string): Promise<void> {
  await chmod(dir, 0o700);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isDirectory()) await chmod(path, 0o700);
    else if (entry.isFile()) await chmod(path, 0o600);
  }
}

/**
 * Writes variables in wrangler's `.dev.vars` format, readable by the owner only. Single-quoted values are
 * taken literally by wrangler's reader and Node's `parseEnv` alike; a value that would end its quotes early
 * or span lines is refused rather than written wrong.
 */
export async function writeVarsFile(path: string, vars: Record<string, string>): Promise<void> {
  const lines = Object.entries(vars).map(([key, value]) => {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(key))
      throw new Error(`Worker variable ${JSON.stringify(key)}: must match [A-Z_][A-Z0-9_]*`);
    if (/['\n\r]/.test(value)) {
      throw new Error(
        `Worker variable ${key}: must not contain a single quote or a line break; got ${JSON.stringify(value)}`,
      );
    }
    return `${key}='${value}'`;
  });
  // Removed first, so an older file with a wider mode never holds the new secrets, not even for a moment.
  await rm(path, { force: true });
  await writeFile(path, `${lines.join("\n")}\n`, { mode: 0o600, flag: "wx" });
}

export async function startEdge(options: EdgeOptions): Promise<EdgeProcess> {
  const vars: Record<string, string> = {
    ADMIN_TOKEN: options.adminToken,
    RUNNER_TOKEN: options.runnerToken,
    RUNNERS: JSON.stringify(options.runners),
    ...options.vars,
  };
  await mkdir(options.persistTo, { recursive: true });
  await makePrivate(options.persistTo);
  const varsFile = options.varsFile ?? join(options.persistTo, "edge.dev.vars");
  await writeVarsFile(varsFile, vars);
  // Not `wrangler dev`: it takes variables only on its argv and always opens an inspector (edge-dev.ts).
  const args = [
    join(ROOT, "scripts/lib/edge-dev.ts"),
    "--env-file",
    varsFile,
    "--persist-to",
    options.persistTo,
    "--port",
    String(options.port),
    ...(options.inspectorPort === undefined ? [] : ["--inspector-port", String(options.inspectorPort)]),
  ];
  const child = spawnChild("edge", process.execPath, args, { env: WRANGLER_ENV, echo: options.echo });
  const url = `http://127.0.0.1:${options.port}`;
  try {
    await waitUntilReady(`${url}/health`, child);
  } catch (error) {
    await child.stop();
    throw error;
  }
  return { ...child, url };
}
