// `npm start`: the whole pipeline on one machine, no GPU, no network. Creates the demo model when missing,
// trains the demo adapters on its warmed base on first start (scripts/demo-data/dev-demo.ts), applies D1
// migrations, starts the runner(s) and the edge (wrangler's dev server, D1 and R2 persisted under the data
// folder), bootstraps the operator token and a demo tenant, registers the base model, publishes the adapters
// found beside the model and the demo's, starts the demo experiment, and prints examples. A second start
// reuses all of it; Ctrl-C stops every process it started. No secret goes on a child's command line and the
// data folder is its owner's alone (README: Security model).
import { chmod, mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type ArgsDef, defineCommand, type ParsedArgs, runMain } from "citty";
import { DEMO_ASK, prepareDemo, publishDemo } from "./demo-data/dev-demo.ts";
import { examples } from "./lib/dev-examples.ts";
import {
  adapterSourcesIn,
  CREDENTIALS_FILE,
  EDGE_VARS_FILE,
  EdgeAdmin,
  ensureDemoModel,
  loadCredentials,
  publishSources,
  saveCredentials,
} from "./lib/dev-setup.ts";
import { applyMigrations, type Child, startEdge, startRunner } from "./lib/processes.ts";

const ARGS = {
  data: {
    type: "string",
    default: ".data",
    description: "folder for D1, R2, credentials and the demo model",
  },
  model: { type: "string", description: "HF model dir (default <data>/models/demo-llama, made if missing)" },
  adapters: {
    type: "string",
    description: "folder of PEFT adapter dirs to publish (default <model>-adapters)",
  },
  "demo-adapters": {
    type: "string",
    default: "2",
    description: "demo adapters to make with a new demo model",
  },
  "train-demo": {
    type: "boolean",
    default: true,
    description: "with the demo model: train the demo adapters on first start, serve their warmed base",
  },
  runners: { type: "string", default: "1", description: "runner processes to start" },
  port: { type: "string", default: "8787", description: "edge port" },
  "runner-port": { type: "string", default: "8000", description: "first runner's port (the others follow)" },
  inspector: {
    type: "string",
    description: "open wrangler's devtools inspector on this port (off by default: it runs code in the edge)",
  },
  quiet: { type: "boolean", default: false, description: "do not echo the children's output" },
} satisfies ArgsDef;

function int(flag: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    throw new Error(`--${flag} must be an integer in ${min}..${max}; got "${raw}"`);
  }
  return n;
}

const children: Child[] = [];
let stopping = false;

async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.all(children.map((c) => c.stop()));
  }
  process.exit(code);
}

function watch(child: Child): void {
  children.push(child);
  void child.exited.then((code) => {
    if (stopping) return;
    console.error(`${child.name} exited (${code}); stopping everything`);
    void stopAll(1);
  });
}

async function start(args: ParsedArgs<typeof ARGS>): Promise<void> {
  const data = resolve(args.data);
  const modelDir = resolve(args.model ?? join(data, "models/demo-llama"));
  const adaptersDir = resolve(args.adapters ?? `${modelDir}-adapters`);
  const edgePort = int("port", args.port, 1, 65535);
  const firstRunnerPort = int("runner-port", args["runner-port"], 1, 65535);
  const runnerCount = int("runners", args.runners, 1, 16);
  const demoAdapters = int("demo-adapters", args["demo-adapters"], 0, 64);
  const inspectorPort = args.inspector === undefined ? undefined : int("inspector", args.inspector, 1, 65535);

  // The data folder holds the operator token, every tenant's keys (hashed), adapters and D1: its owner's
  // alone. Everything made below inherits the mask; what an older start left is narrowed by hand.
  process.umask(0o077);
  await mkdir(data, { recursive: true });
  await chmod(data, 0o700);

  if (await ensureDemoModel(modelDir, demoAdapters)) console.log(`made the demo model in ${modelDir}`);
  // The demo adapters are trained against the warmed base (see the README's Training section): serve it.
  const demo = args.model === undefined && args["train-demo"] ? await prepareDemo(data, modelDir) : null;
  const servedDir = demo?.base ?? modelDir;
  const { credentials, created } = await loadCredentials(data);
  const persistTo = join(data, "state");
  await applyMigrations(persistTo);
  const runners = await Promise.all(
    Array.from({ length: runnerCount }, (_, i) =>
      startRunner({
        model: servedDir,
        port: firstRunnerPort + i,
        token: credentials.runnerToken,
        echo: !args.quiet,
      }),
    ),
  );
  runners.forEach(watch);
  const edge = await startEdge({
    persistTo,
    port: edgePort,
    adminToken: credentials.adminToken,
    runnerToken: credentials.runnerToken,
    runners: runners.map((r) => ({ url: r.url })),
    varsFile: join(data, EDGE_VARS_FILE),
    ...(inspectorPort === undefined ? {} : { inspectorPort }),
    echo: !args.quiet,
  });
  watch(edge);

  const admin = new EdgeAdmin(edge.url);
  const base = await admin.registerBase(credentials.adminToken, servedDir);
  const newKey = credentials.tenantKey === null || !(await admin.keyWorks(credentials.tenantKey));
  if (newKey) {
    credentials.tenantKey = await admin.tenantKey(credentials.adminToken, credentials.tenant);
    await saveCredentials(data, credentials);
  }
  const published = await publishSources(
    edge.url,
    credentials.tenantKey as string,
    base,
    await adapterSourcesIn(adaptersDir),
  );
  const demoRelease = demo
    ? await publishDemo(edge.url, credentials.tenantKey as string, base, demo, data)
    : null;
  published.push(...(demoRelease?.published ?? []));
  console.log(
    examples({
      edgeUrl: edge.url,
      runners: runners.map((r) => r.url),
      base,
      published,
      credentials,
      credentialsPath: join(data, CREDENTIALS_FILE),
      showSecrets: created || newKey,
      ...(demoRelease ? { ask: DEMO_ASK } : {}),
    }),
  );
  for (const line of demoRelease?.lines ?? []) console.log(line);
}

const command = defineCommand({
  meta: { name: "dev", description: "Run the edge, the runner(s) and the registry locally" },
  args: ARGS,
  async run({ args }) {
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void stopAll(0));
    try {
      await start(args);
    } catch (error) {
      console.error(`npm start: ${(error as Error).message}`);
      await stopAll(1);
    }
  },
});

// Children lead their own process groups, so they would outlive this process: the last word is a SIGKILL.
process.on("exit", () => {
  for (const child of children) {
    if (child.process.exitCode !== null || child.process.pid === undefined) continue;
    try {
      process.kill(-child.process.pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
});

await runMain(command);
