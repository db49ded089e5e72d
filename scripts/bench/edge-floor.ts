// Starts the floor Worker (edge-floor-worker.ts) under `wrangler dev`, configured like the edge (same
// compatibility date, loopback, no telemetry), in front of a given runner.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, ROOT, spawnChild, WRANGLER, WRANGLER_ENV, waitUntilReady } from "../lib/processes.ts";

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
  const child = spawnChild(
    "floor",
    process.execPath,
    [
      WRANGLER,
      "dev",
      "--config",
      config,
      "--port",
      String(port),
      "--ip",
      "127.0.0.1",
      "--inspector-port",
      String(await freePort()),
      "--show-interactive-dev-session=false",
      "--var",
      `RUNNER_URL:${runnerUrl}`,
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
