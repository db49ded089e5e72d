// The edge as a local program: wrangler's dev server (its own `startWorker`, what `wrangler dev` runs) with
// local D1 and R2 persisted under a folder. Started by `startEdge` (processes.ts) as a child, never by hand.
// It exists because `wrangler dev` on the command line has two habits a shared machine must not see: secrets
// go on its argv (`--var`, readable by every user through `ps`), and it always opens a devtools inspector,
// through which any local process can run code inside the Worker. Here the Worker's variables come from a
// file only the owner can read (wrangler's `.dev.vars` format, passed as wrangler's env file), the inspector
// is off unless `--inspector-port` asks for it, and everything workerd writes is private (umask 077).
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseEnv } from "node:util";
import { type ArgsDef, defineCommand, runMain } from "citty";
import { unstable_startWorker } from "wrangler";

const ROOT = join(import.meta.dirname, "../..");

const ARGS = {
  "env-file": { type: "string", required: true, description: "the Worker's variables, mode 600" },
  "persist-to": { type: "string", required: true, description: "folder for local D1 and R2" },
  port: { type: "string", required: true, description: "port on 127.0.0.1" },
  "inspector-port": { type: "string", description: "open the devtools inspector on this port" },
  config: { type: "string", description: "the Worker's wrangler.toml (default: the edge's)" },
} satisfies ArgsDef;

function port(flag: string, raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > 65535) {
    throw new Error(`--${flag} must be an integer in 1..65535; got "${raw}"`);
  }
  return n;
}

/** The variables file, refused when others could read it: it holds the operator token. */
function readVarsFile(path: string): Record<string, string> {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new Error(`${path}: must be readable by its owner only (mode 600); got mode ${mode.toString(8)}`);
  }
  return parseEnv(readFileSync(path, "utf8")) as Record<string, string>;
}

const command = defineCommand({
  meta: { name: "edge-dev", description: "The edge Worker on local D1 and R2, secrets from a file" },
  args: ARGS,
  async run({ args }) {
    // Before workerd starts: it inherits the mask, so D1's sqlite files and R2's blobs are 600, folders 700.
    process.umask(0o077);
    const envFile = args["env-file"];
    const vars = readVarsFile(envFile);
    const inspector =
      args["inspector-port"] === undefined
        ? false
        : { hostname: "127.0.0.1", port: port("inspector-port", args["inspector-port"]) };
    const worker = await unstable_startWorker({
      config: args.config ?? join(ROOT, "wrangler.toml"),
      // The env file also keeps wrangler from reading a `.dev.vars` or `.env` beside wrangler.toml.
      envFiles: [envFile],
      // Every entry as a binding, not only the ones wrangler.toml declares (RUNNERS, RUNNER_TIMEOUT_MS…);
      // bindings given here also win over same-named variables of the shell wrangler would otherwise read.
      bindings: Object.fromEntries(
        Object.entries(vars).map(([k, v]) => [k, { type: "secret_text" as const, value: v }]),
      ),
      dev: {
        server: { hostname: "127.0.0.1", port: port("port", args.port) },
        inspector,
        persist: args["persist-to"],
        watch: false,
        logLevel: "warn",
      },
    });
    await worker.ready;
    console.log(`edge ready on ${(await worker.url).href}`);
    const stop = async () => {
      await worker.dispose();
      process.exit(0);
    };
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void stop());
  },
});

await runMain(command);
