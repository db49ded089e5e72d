// `npm run train` as a user runs it (a child process, JSON lines on a pipe) on the demo model and demo
// tickets: the output is a PEFT directory our publish-time validation accepts, the model card names both
// evaluations, bad rows fail the run with their line numbers, and a resumed run ends where an uninterrupted
// one does, bit for bit.
import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { openPeftDir, readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import { writeDemoData } from "../../scripts/demo-data/index.ts";
import { writeDemoModel } from "../../scripts/demo-model/index.ts";
import { validateAdapter } from "../../src/adapters/validate.ts";

let root = "";
let base = "";
let data = "";

function train(...args: string[]) {
  const run = spawnSync(
    process.execPath,
    [
      "gpu-runner/training/main.ts",
      "--base",
      base,
      "--batch-size",
      "4",
      "--threads",
      "1",
      "--seed",
      "3",
      ...args,
    ],
    { encoding: "utf8", timeout: 240_000 },
  );
  const events = run.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status: run.status, stderr: run.stderr, events };
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "train-cli-"));
  base = join(root, "demo-llama");
  await writeDemoModel({ out: base, seed: 0 });
  data = writeDemoData(join(root, "data"), 24, 5).classify;
});

describe("npm run train", () => {
  it("writes a PEFT adapter that validates against the base, with a model card", async () => {
    const out = join(root, "out");
    const run = train(
      "--data",
      data,
      "--out",
      out,
      "--max-steps",
      "3",
      "--lr",
      "1e-3",
      "--targets",
      "q_proj,v_proj",
      "--val-fraction",
      "0.2",
    );
    expect(run.status, run.stderr).toBe(0);
    const steps = run.events.filter((e) => e.event === "step");
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3]);
    expect(steps.every((e) => Number.isFinite(e.loss) && (e.tokens_per_second as number) > 0)).toBe(true);
    const model = await loadHfModel(base);
    const dir = await openPeftDir(out);
    const validated = validateAdapter({ config: dir.config, header: dir.header, spec: model.spec });
    expect(validated.modules.map((m) => m.module)).toHaveLength(2 * model.spec.numLayers);
    const weights = readPeftDir(out, model.spec);
    expect(weights.modules.some((m) => m.b.some((v) => v !== 0))).toBe(true);
    const card = readFileSync(join(out, "README.md"), "utf8");
    expect(card).toContain("| this adapter |");
    expect(card).toContain("| champion: base demo-llama |");
    const report = JSON.parse(readFileSync(join(out, "training_report.json"), "utf8"));
    expect(report.adapter.exactMatchRows).toBe(5);
    expect(report.adapter.loss).toBeLessThan(report.champion.loss);
    model.weights.close();
  });

  it("fails on bad rows and names each line", () => {
    const bad = join(root, "bad.jsonl");
    writeFileSync(bad, readFileSync(data, "utf8").split("\n").slice(0, 3).join("\n"));
    appendFileSync(
      bad,
      '\n{"prompt": "no completion"}\nnot json\n{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "x"}]}\n',
    );
    const run = train("--data", bad, "--out", join(root, "bad-out"));
    expect(run.status).toBe(1);
    const lines = run.events.filter((e) => e.event === "bad_row").map((e) => e.line);
    expect(lines).toEqual([4, 5, 6]);
    expect(run.stderr).toContain("line 4: completion");
    expect(run.stderr).toContain('line 6: messages: the last message must have role "assistant"');
    expect(existsSync(join(root, "bad-out", "adapter_model.safetensors"))).toBe(false);
  });

  it("a run resumed from a checkpoint ends with the same weights", () => {
    const common = [
      "--data",
      data,
      "--max-steps",
      "4",
      "--lr",
      "1e-3",
      "--targets",
      "q_proj,o_proj",
      "--val-fraction",
      "0.2",
    ];
    const whole = join(root, "whole");
    expect(train(...common, "--out", whole, "--checkpoint-every", "2").status).toBe(0);
    const checkpoint = join(whole, "checkpoints", "step-2");
    expect(existsSync(join(checkpoint, "optimizer.safetensors"))).toBe(true);
    const resumed = join(root, "resumed");
    const run = train(...common, "--out", resumed, "--resume", checkpoint);
    expect(run.status, run.stderr).toBe(0);
    expect(run.events.filter((e) => e.event === "step").map((e) => e.step)).toEqual([3, 4]);
    const a = readFileSync(join(whole, "adapter_model.safetensors"));
    const b = readFileSync(join(resumed, "adapter_model.safetensors"));
    expect(Buffer.compare(a, b)).toBe(0);
  });
});
