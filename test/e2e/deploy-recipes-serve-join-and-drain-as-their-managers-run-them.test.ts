// The deploy recipes, run as their managers would run them, as far as a machine without systemd as PID 1 or a
// Docker daemon allows (README, "Deploying it"). The unit passes `systemd-analyze verify` (against a temporary
// root holding the system's units and the unit's ExecStart binary where the install puts it); its ExecStart,
// expanded from the env example with this machine's values and with only the environment systemd gives a
// service, serves the demo model, joins a real edge, and the unit's KillSignal drains it: /ready fails, a
// running stream finishes, it leaves and exits 0 before TimeoutStopSec (past it, SIGKILL, as systemd). The
// container's ENTRYPOINT runs through /bin/sh with the image's ENV and `--env-file`'s, the model where its
// VOLUME would be mounted: its shell execs Node (so STOPSIGNAL reaches the runner), HEALTHCHECK passes while it
// serves and drains and fails when nothing listens, and STOPSIGNAL drains it within docker's stop timeout.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  copyFile,
  cp,
  link,
  mkdir,
  mkdtemp,
  readFile,
  realpath,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeDemoModel } from "../../scripts/demo-model/index.ts";
import { EdgeAdmin } from "../../scripts/lib/dev-setup.ts";
import { applyMigrations, type EdgeProcess, freePort, startEdge } from "../../scripts/lib/processes.ts";
import type { PoolEntry } from "../../src/contracts/fleet.ts";
import { RunnerReadySchema } from "../../src/contracts/runner.ts";
import {
  dockerEnv,
  dockerStopTimeout,
  entrypointShell,
  envFile,
  execForm,
  execStart,
  healthcheck,
  instructions,
  only,
  ROOT,
  read,
  seconds,
  service,
} from "../helpers/deploy-recipes.ts";

const ADMIN = "deploy-recipes-operator-token-0123456789";
const RUNNER_TOKEN = "deploy-recipes-runner-token-0123456789";
const UNIT = "lora-edge-runner.service";
/** PATH as systemd sets it for a system service. */
const SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const unitText = read(`deploy/${UNIT}`);
const settings = service(unitText);
const example = envFile(read("deploy/runner.env.example"));
const dockerfile = read("deploy/runner.Dockerfile");
const steps = instructions(dockerfile);

let work: string;
let model: string;
let edge: EdgeProcess;
let admin: EdgeAdmin;
let fleetKey: string;
let base: string;
const running: Recipe[] = [];

/** A process as a manager starts it: its own group, exactly the environment given, output kept. */
interface Recipe {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | string>;
  log(): string;
  /** SIGKILL to the whole group: what systemd and Docker do once the stop timeout runs out. */
  killGroup(): void;
}

function launch(cmd: string, args: string[], env: Record<string, string>, cwd: string): Recipe {
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let tail = "";
  const take = (data: Buffer) => {
    tail = (tail + data.toString()).slice(-20_000);
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const recipe: Recipe = {
    child,
    pid: child.pid as number,
    exited,
    log: () => tail,
    killGroup: () => {
      try {
        process.kill(-(child.pid as number), "SIGKILL");
      } catch {
        // the group is gone already
      }
    },
  };
  running.push(recipe);
  return recipe;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `url` answers 200; fails with the process's output if it exits first. */
async function waitForReady(
  url: string,
  recipe: Recipe,
  headers: Record<string, string> = {},
): Promise<void> {
  let exited: number | string | null = null;
  void recipe.exited.then((code) => {
    exited = code;
  });
  for (;;) {
    if (exited !== null) throw new Error(`it exited (${exited}) before ${url} answered:\n${recipe.log()}`);
    try {
      if ((await fetch(url, { headers })).status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
}

async function members(): Promise<PoolEntry[]> {
  const list = (await admin.expect(await admin.call("GET", "/admin/runners", ADMIN), [200], "runners")) as {
    data: PoolEntry[];
  };
  return list.data;
}

async function joined(url: string, recipe: Recipe): Promise<PoolEntry> {
  for (;;) {
    const entry = (await members()).find((e) => e.url === url);
    if (entry !== undefined) return entry;
    if (recipe.child.exitCode !== null) throw new Error(`it exited before it joined:\n${recipe.log()}`);
    await sleep(100);
  }
}

/** A long stream straight to the runner, as the edge sends one; resolves once its first bytes came. */
async function holdStream(url: string) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${RUNNER_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: base,
      messages: [{ role: "user", content: "Tell me a long story." }],
      max_tokens: 1500,
      ignore_eos: true,
      stream: true,
    }),
  });
  expect(res.status).toBe(200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let text = new TextDecoder().decode((await reader.read()).value);
  return {
    async rest(): Promise<string> {
      for (let r = await reader.read(); !r.done; r = await reader.read())
        text += new TextDecoder().decode(r.value);
      return text;
    },
  };
}

/**
 * Stops `recipe` as its manager does: `signal` to the main process only, SIGKILL to the group once `graceS`
 * ran out. While it drains, `whileDraining` looks at it; resolves with how the process ended.
 */
async function stopAsManager(
  recipe: Recipe,
  signal: NodeJS.Signals,
  graceS: number,
  whileDraining: () => Promise<void>,
): Promise<number | string> {
  process.kill(recipe.pid, signal);
  const timer = setTimeout(() => recipe.killGroup(), graceS * 1000);
  try {
    // the drain has begun once it says so, with the held stream counted
    while (!recipe.log().includes("draining: 1 request(s) in flight")) {
      if (recipe.child.exitCode !== null || recipe.child.signalCode !== null)
        throw new Error(`it ended before it drained:\n${recipe.log()}`);
      await sleep(50);
    }
    await whileDraining();
    return await recipe.exited;
  } finally {
    clearTimeout(timer);
    // KillMode=mixed and Docker alike: whatever the main process left in its group goes with it
    recipe.killGroup();
  }
}

function streamEnded(text: string): void {
  const events = text.split("\n").filter((l) => l.startsWith("data: "));
  expect(events.at(-1)).toBe("data: [DONE]");
  expect(text).not.toContain('"error"');
}

/** The env file of this host, from the example: the same keys, this machine's values. */
async function hostEnv(port: number) {
  const env = {
    EDGE_URL: edge.url,
    ADVERTISE_URL: `http://127.0.0.1:${port}`,
    PORT: String(port),
    MODEL_DIR: model,
    FLEET_TOKEN: fleetKey,
    RUNNER_TOKEN,
  };
  // a key the example gains and this test does not set would pass unseen: the sets must match
  expect(Object.keys(env).sort()).toEqual(Object.keys(example).sort());
  return env;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "lora-edge-deploy-"));
  model = join(work, "demo-llama");
  await writeDemoModel({ out: model, seed: 0 });
  const persistTo = join(work, "state");
  await applyMigrations(persistTo);
  edge = await startEdge({
    persistTo,
    port: await freePort(),
    adminToken: ADMIN,
    runnerToken: RUNNER_TOKEN,
    runners: [],
  });
  admin = new EdgeAdmin(edge.url);
  base = await admin.registerBase(ADMIN, model);
  await admin.expect(await admin.call("POST", "/admin/tenants", ADMIN, { name: "ops" }), [201], "tenant");
  const fleet = (await admin.expect(
    await admin.call("POST", "/admin/keys", ADMIN, { tenant: "ops", name: "fleet", scopes: ["runner"] }),
    [201],
    "fleet key",
  )) as { key: string };
  fleetKey = fleet.key;
}, 300_000);

afterAll(async () => {
  for (const recipe of running) recipe.killGroup();
  await Promise.all(running.map((r) => r.exited));
  await edge?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("the systemd unit", () => {
  /** A root for `systemd-analyze verify --root`: the system's units, the unit and its ExecStart binary. */
  async function sysroot(unit: string): Promise<string> {
    const root = await mkdtemp(join(work, "sysroot-"));
    await cp("/lib/systemd/system", join(root, "usr/lib/systemd/system"), {
      recursive: true,
      verbatimSymlinks: true,
    });
    const workdir = settings.get("WorkingDirectory") as string;
    const binary = execStart(settings, example)[0] as string;
    expect(binary).toBe(`${workdir}/node_modules/.bin/node`);
    // as `npm ci` lays it out: .bin/node is a relative link to the "node" package's binary
    const real = join(root, workdir, "node_modules/node/bin/node");
    await mkdir(dirname(real), { recursive: true });
    const node = await realpath(join(ROOT, "node_modules/.bin/node"));
    await link(node, real).catch(() => copyFile(node, real));
    await mkdir(join(root, dirname(binary)), { recursive: true });
    await symlink("../node/bin/node", join(root, binary));
    await mkdir(join(root, "etc/systemd/system"), { recursive: true });
    await writeFile(join(root, "etc/systemd/system", UNIT), unit);
    await mkdir(join(root, dirname(settings.get("EnvironmentFile") as string)), { recursive: true });
    await copyFile(
      join(ROOT, "deploy/runner.env.example"),
      join(root, settings.get("EnvironmentFile") as string),
    );
    return root;
  }

  function verify(root: string): { status: number | null; output: string; error?: Error } {
    const run = spawnSync(
      "systemd-analyze",
      ["verify", "--no-pager", `--root=${root}`, join(root, "etc/systemd/system", UNIT)],
      { encoding: "utf8" },
    );
    return { status: run.status, output: `${run.stdout ?? ""}${run.stderr ?? ""}`, error: run.error };
  }

  it("passes systemd-analyze verify with nothing to say, which does report a broken copy", async () => {
    const good = verify(await sysroot(unitText));
    // systemd-analyze comes with systemd; .ci/run installs it where it is missing
    expect(good.error, "systemd-analyze must be on PATH").toBeUndefined();
    expect(good.output).toBe("");
    expect(good.status).toBe(0);
    // verify exits 0 on a setting it ignores; only its silence says the unit is right
    const broken = verify(await sysroot(unitText.replace(/^KillMode=mixed$/m, "KillMode=mixd")));
    expect(broken.output).toContain("kill mode");
  });

  it("runs its ExecStart as systemd would: serves, joins, and KillSignal drains it within TimeoutStopSec", async () => {
    const port = await freePort();
    const file = await hostEnv(port);
    const workdir = settings.get("WorkingDirectory") as string;
    const words = execStart(settings, file);
    // the repository sits at WorkingDirectory once installed; here it is this checkout
    const [binary, ...args] = words.map((w) =>
      w.startsWith(`${workdir}/`) ? join(ROOT, w.slice(workdir.length)) : w,
    );
    // systemd gives a service only its EnvironmentFile, PATH and the user's HOME, nothing of the caller's
    const env = { ...file, PATH: SYSTEMD_PATH, HOME: ROOT };
    const runner = launch(binary as string, args, env, ROOT);
    const url = `http://127.0.0.1:${port}`;
    await waitForReady(`${url}/ready`, runner);
    expect(RunnerReadySchema.parse(await (await fetch(`${url}/ready`)).json()).model).toBe(base);
    expect(await joined(file.ADVERTISE_URL, runner)).toMatchObject({ kind: "runner", baseModel: base });
    const stream = await holdStream(url);
    const ended = await stopAsManager(
      runner,
      settings.get("KillSignal") as NodeJS.Signals,
      seconds(settings.get("TimeoutStopSec") as string),
      async () => {
        const ready = await fetch(`${url}/ready`);
        expect(ready.status).toBe(503);
        expect(((await ready.json()) as { error: { code: string } }).error.code).toBe("unavailable");
        expect((await fetch(`${url}/health`)).status).toBe(200);
        streamEnded(await stream.rest());
      },
    );
    // 0, not SIGKILL: it drained before TimeoutStopSec, and Restart=on-failure leaves it stopped
    expect(ended, runner.log()).toBe(0);
    expect((await members()).map((e) => e.url)).not.toContain(file.ADVERTISE_URL);
  });
  it("serves while its edge cannot be reached yet, retrying the join, and KillSignal still ends it with 0", async () => {
    const port = await freePort();
    // an edge that is not up yet: a port nothing listens on
    const file = { ...(await hostEnv(port)), EDGE_URL: `http://127.0.0.1:${await freePort()}` };
    const workdir = settings.get("WorkingDirectory") as string;
    const [binary, ...args] = execStart(settings, file).map((w) =>
      w.startsWith(`${workdir}/`) ? join(ROOT, w.slice(workdir.length)) : w,
    );
    const runner = launch(binary as string, args, { ...file, PATH: SYSTEMD_PATH, HOME: ROOT }, ROOT);
    await waitForReady(`http://127.0.0.1:${port}/ready`, runner);
    while (!runner.log().includes("trying again")) await sleep(50);
    process.kill(runner.pid, settings.get("KillSignal") as NodeJS.Signals);
    const timer = setTimeout(
      () => runner.killGroup(),
      seconds(settings.get("TimeoutStopSec") as string) * 1000,
    );
    // a stop before the edge accepted the join is a drain, not a failure Restart=on-failure would act on
    expect(await runner.exited, runner.log()).toBe(0);
    clearTimeout(timer);
    expect(runner.log()).not.toContain("the member stopped before it joined");
  });
});

describe("the container recipe", () => {
  /** The container's environment: the image's ENV, then `--env-file`'s; PATH as the node image sets it. */
  function containerEnv(file: Record<string, string>): Record<string, string> {
    return {
      PATH: `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: work,
      ...dockerEnv(steps),
      ...file,
    };
  }

  function runHealthcheck(env: Record<string, string>): number | null {
    const { command } = healthcheck(steps);
    const [cmd, ...args] = command;
    // `node` resolves through the container's PATH, as in the image
    const run = spawnSync(cmd as string, args, {
      env,
      cwd: ROOT,
      encoding: "utf8",
    });
    return run.status;
  }

  it("fails its HEALTHCHECK while nothing listens on $PORT", async () => {
    const env = containerEnv(await hostEnv(await freePort()));
    expect(runHealthcheck(env)).toBe(1);
  });

  it("execs the runner from its ENTRYPOINT: serves, joins, passes HEALTHCHECK, and STOPSIGNAL drains it", async () => {
    const port = await freePort();
    const env = containerEnv(await hostEnv(port));
    const { script, name } = entrypointShell(steps);
    // `-v <model>:/models/base` puts the model at the VOLUME; here the path is the demo model's
    const volume = (JSON.parse(only(steps, "VOLUME")) as string[])[0] as string;
    expect(script).toContain(`--model ${volume} `);
    const mapped = script.replace(`--model ${volume} `, `--model ${model} `);
    // flags after the image name: CMD is replaced by them; probes behind the token prove HEALTHCHECK sends it
    expect(execForm(only(steps, "CMD"))).toEqual([]);
    const runner = launch("/bin/sh", ["-c", `exec ${mapped}`, name, "--public-probes", "false"], env, ROOT);
    const url = `http://127.0.0.1:${port}`;
    const auth = { authorization: `Bearer ${RUNNER_TOKEN}` };
    await waitForReady(`${url}/ready`, runner, auth);
    // the shell is gone: the process Docker signals is Node itself
    const argv = (await readFile(`/proc/${runner.pid}/cmdline`, "utf8")).split("\0");
    expect(argv.slice(0, 2)).toEqual(["node", "gpu-runner/serving/main.ts"]);
    expect(runHealthcheck(env)).toBe(0);
    const { RUNNER_TOKEN: _, ...tokenless } = env;
    expect(runHealthcheck(tokenless)).toBe(1);
    expect(await joined(env.ADVERTISE_URL as string, runner)).toMatchObject({
      kind: "runner",
      baseModel: base,
    });
    const stream = await holdStream(url);
    const ended = await stopAsManager(
      runner,
      only(steps, "STOPSIGNAL") as NodeJS.Signals,
      dockerStopTimeout(dockerfile),
      async () => {
        expect((await fetch(`${url}/ready`, { headers: auth })).status).toBe(503);
        // liveness holds while it drains: Docker keeps it healthy, nothing restarts it mid-drain
        expect(runHealthcheck(env)).toBe(0);
        streamEnded(await stream.rest());
      },
    );
    expect(ended, runner.log()).toBe(0);
    expect((await members()).map((e) => e.url)).not.toContain(env.ADVERTISE_URL);
  });
});
