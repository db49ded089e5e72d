// Each command refuses a misspelt flag with exit code 2 before it reads a file or calls the edge, so a
// typo never runs a command without the setting it was meant to carry.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

describe.each([
  [
    "scripts/publish-adapter.ts",
    ["./no-such-dir", "--name", "a", "--base", "b", "--alais", "prod"],
    "--alias",
  ],
  ["scripts/experiment.ts", ["list", "--jsno"], "--json"],
  ["scripts/usage.ts", ["--gruop-by", "key"], "--group-by"],
  ["gpu-runner/training/main.ts", ["--bse", "x"], "--base"],
  ["gpu-runner/serving/main.ts", ["--model", "m", "--max-lora", "2"], "--max-loras"],
])("%s", (script, args, suggestion) => {
  it(`exits 2 on a misspelt flag and suggests ${suggestion}`, () => {
    const run = spawnSync(process.execPath, [script, ...args], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, EDGE_URL: "http://127.0.0.1:9", EDGE_TOKEN: "unused" },
      timeout: 60_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`did you mean ${suggestion}?`);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});
