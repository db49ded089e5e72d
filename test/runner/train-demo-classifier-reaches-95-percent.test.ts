// The demo's quality bar: a seeded run on the demo support tickets gives a classification adapter
// with held-out exact-match accuracy of at least 95%, measured beside the base model's own score on the
// same rows. The base is the demo model after the trainer's full-parameter warm-up (warm-up-base.ts).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { writeDemoData } from "../../scripts/demo-data/index.ts";
import { warmUpBase } from "../../scripts/demo-data/warm-up-base.ts";
import { writeDemoModel } from "../../scripts/demo-model/index.ts";
import { runTraining } from "../../gpu-runner/training/program/pipeline.ts";
import { parseSettings } from "../../gpu-runner/training/program/settings.ts";

const quiet = { step: () => undefined, event: () => undefined, stop: () => undefined };

it("the classification adapter scores >= 95% held out; the base does not", { timeout: 600_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), "train-demo-"));
  await writeDemoModel({ out: join(root, "model"), seed: 0 });
  await warmUpBase(join(root, "model"), join(root, "base"), { seed: 7, threads: 2, epochs: 8 });
  const data = writeDemoData(join(root, "data"), 400, 7);
  const report = await runTraining(
    parseSettings({
      base: join(root, "base"),
      data: data.classify,
      out: join(root, "adapter"),
      epochs: 2,
      lr: 3e-3,
      warmup: 5,
      schedule: "cosine",
      batchSize: 8,
      seed: 7,
      threads: 2,
    }),
    quiet,
  );
  expect(report.adapter.exactMatchRows).toBe(40);
  expect(report.adapter.exactMatch).toBeGreaterThanOrEqual(0.95);
  expect(report.champion.exactMatch).toBeLessThan(0.5);
  expect(report.adapter.loss).toBeLessThan(report.champion.loss);
});
