// The layer check of `.ci/run` (`npm run deps:check`, rules in .dependency-cruiser.cjs, described in
// docs/architecture.md#layers): it reports each rule a planted tree breaks, and nothing on the real tree.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const CRUISE = join(ROOT, "node_modules", "dependency-cruiser", "bin", "dependency-cruiser.mjs");
const CONFIG = join(ROOT, ".dependency-cruiser.cjs");

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
}

function cruise(cwd: string, folders: string[]): Violation[] {
  const out = execFileSync(
    process.execPath,
    [CRUISE, ...folders, "--config", CONFIG, "--output-type", "json", "--no-progress"],
    { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, stdio: ["ignore", "pipe", "pipe"] },
  ).toString();
  return (JSON.parse(out) as { summary: { violations: Violation[] } }).summary.violations;
}

describe("the layer check", () => {
  it("reports a core import, a store reaching a cache, serving importing training, and a cycle", () => {
    const found = cruise(join(ROOT, "test", "fixtures", "layers"), ["src", "workers", "gpu-runner"]);
    const byRule = found.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
    expect(byRule).toEqual([
      "no-cycles: gpu-runner/training/b.ts -> gpu-runner/training/loop.ts",
      "serving-not-training: gpu-runner/serving/scheduler.ts -> gpu-runner/training/loop.ts",
      "src-imports-nothing-of-ours: src/core.ts -> workers/edge/app.ts",
      "stores-not-caches: workers/edge/registry/registry-store.ts -> workers/edge/registry/model-cache.ts",
    ]);
  }, 60_000);

  it("finds no violation in the project's own tree", () => {
    expect(cruise(ROOT, ["src", "workers", "gpu-runner", "cli", "scripts"])).toEqual([]);
  }, 60_000);
});
