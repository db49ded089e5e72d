// Starts the floor Worker (edge-floor-worker.ts) under wrangler's dev server, configured and started like the
// edge (same compatibility date, loopback, no telemetry, variables from a mode-600 file through edge-dev.ts,
// no inspector), in front of a given runner.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, ROOT, spawnChild, WRANGLER_ENV, waitUntilReady, writeVarsFile } from "../lib/processes.ts";

export async function startFloor(
  work: string,
  runnerUrl: string,
): Promise<{ url: string; stop(): Promise<void> }> {
  const config = join(work, "floor-wrangler.toml");
  const toml = await readFile(join(ROOT, "wrangler.toml"), "utf8");
  const date = /compatibility_date\s*=\s*"([^"]+)"/.exec(toml)?.[1];
  if (date === undefined) throw new Error("wrangler.toml has no compatibility_date");
  const main = join(ROOT, "scripts/bench/edge-floor-worker.ts");
  await writeFile(
    config,
    `name = "bench-floor"\nmain = ${JSON.stringify(main)}\ncompatibility_date = "${date}"\n`,
  );
  const port = await freePort();
  const varsFile = join(work, "floor.dev.vars");
  await writeVarsFile(varsFile, { RUNNER_URL: runnerUrl });
  const child = spawnChild(
    "floor",
    process.execPath,
    [
      join(ROOT, "scripts/lib/edge-dev.ts"),
      "--config",
      config,
      "--env-file",
      varsFile,
      "--persist-to",
      join(work, "floor-state"),
      "--port",
      String(port),
    ],
    { env: WRANGLER_ENV },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilReady(`${url}/health`, child);
  } catch (error) {
    await child.stop();
    throw error;
  }
  return { url, stop: () => child.stop() };
}
