// `npm start` as a user meets it on a fresh clone: it makes the demo model, starts everything, prints
// examples that work as printed; Ctrl-C stops every process; a second start reuses the data.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Child, freePort, ROOT, spawnChild } from "../../scripts/lib/processes.ts";

// A first start trains the demo adapters (about 80 s on a quiet 2-core machine: README, Training); these bounds
// only catch a start that hangs, with room for the other e2e files running beside it.
const START_READY_MS = 400_000;
const START_TEST_MS = 420_000;

let data: string;
let edgePort: number;
let runnerPort: number;
const started: Child[] = [];

async function npmStart(): Promise<Child> {
  const args = [
    "scripts/dev.ts",
    "--data",
    data,
    "--port",
    String(edgePort),
    "--runner-port",
    String(runnerPort),
  ];
  const child = spawnChild("npm start", process.execPath, [...args, "--quiet"]);
  started.push(child);
  const deadline = Date.now() + START_READY_MS;
  while (!child.log().includes("Publish your own")) {
    if (child.process.exitCode !== null) throw new Error(`npm start exited early:\n${child.log()}`);
    if (Date.now() > deadline) throw new Error(`npm start never got ready:\n${child.log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return child;
}

/** Runs the printed `export …` and `curl …` lines in bash, as a user pasting them would. */
function runPrinted(log: string, match: RegExp): Promise<string> {
  const lines = log.split("\n").map((l) => l.trim());
  const exportLine = lines.find((l) => l.startsWith("export LORA_EDGE_KEY="));
  const command = lines.find((l) => match.test(l));
  if (exportLine === undefined || command === undefined) throw new Error(`no such example in:\n${log}`);
  return new Promise((resolve, reject) => {
    const bash = spawn("bash", ["-c", `${exportLine}\n${command}`], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}` },
    });
    let out = "";
    bash.stdout.on("data", (d) => (out += d));
    bash.stderr.on("data", (d) => (out += d));
    bash.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${out}`))));
  });
}

async function listening(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/health`);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  data = await mkdtemp(join(tmpdir(), "lora-edge-start-"));
  edgePort = await freePort();
  runnerPort = await freePort();
});
afterAll(async () => {
  await Promise.all(started.map((c) => c.stop()));
  if (data) await rm(data, { recursive: true, force: true });
});

describe("npm start", () => {
  it(
    "starts everything from nothing, prints working curl and OpenAI SDK examples, and stops on Ctrl-C",
    async () => {
      const first = await npmStart();
      const log = first.log();
      expect(existsSync(join(data, "models/demo-llama/config.json"))).toBe(true);
      expect(log).toContain("shown this once");
      expect(log).toMatch(/lek_[0-9a-f]{20,}/);
      expect(log).toContain("published now: demo-0@1, demo-1@1");

      const curl = JSON.parse(await runPrinted(log, /^curl /)) as {
        choices: { message: { content: string } }[];
      };
      expect(curl.choices[0]?.message.content.length).toBeGreaterThan(0);
      const sdk = await runPrinted(log, /^npx node --input-type=module/);
      expect(sdk.trim().length).toBeGreaterThan(0);

      first.process.kill("SIGINT");
      expect(await first.exited).toBe(0);
      expect(await listening(edgePort)).toBe(false);
      expect(await listening(runnerPort)).toBe(false);
    },
    START_TEST_MS,
  );

  it(
    "reuses the data on a second start: same key, nothing published again",
    async () => {
      const second = await npmStart();
      const log = second.log();
      expect(log).not.toContain("shown this once");
      expect(log).not.toMatch(/lek_[0-9a-f]{20,}/);
      expect(log).not.toContain("published now");
      expect(log).not.toContain("made the demo model");
      const curl = JSON.parse(await runPrinted(log, /^curl /)) as { choices: unknown[] };
      expect(curl.choices).toHaveLength(1);
      second.process.kill("SIGTERM");
      expect(await second.exited).toBe(0);
      expect(await listening(edgePort)).toBe(false);
    },
    START_TEST_MS,
  );
});
