// `node scripts/demo-data/train-demo.ts --model <demo model dir> --out <dir>`: what `npm start` needs on
// first start: the warmed-up demo base (<out>/<model>-warm, see warm-up-base.ts), the demo datasets, and the
// demo adapters trained on it (PEFT dirs with model cards under <out>/adapters/): support-classify-launch
// (the launch version, trained before the "feature" category existed: the demo experiment's control),
// support-classify (all five categories: its canary) and support-reply (Nimbus's reply template with the
// ticket's fields filled in). Serve the warm base with them: the adapters are trained against its head. A
// second call with the same model, seed and rows reuses the output (demo.json records what made it).
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { defineCommand, runMain } from "citty";
import { runTraining } from "../../gpu-runner/training/program/pipeline.ts";
import type { ProgressSink } from "../../gpu-runner/training/program/progress.ts";
import type { TrainReport } from "../../gpu-runner/training/program/report.ts";
import { parseSettings } from "../../gpu-runner/training/program/settings.ts";
import { writeDemoData } from "./index.ts";
import { warmUpBase } from "./warm-up-base.ts";

export interface DemoTrainOptions {
  model: string;
  out: string;
  seed: number;
  threads: number;
  rows: number;
  sink: ProgressSink;
}

export type DemoAdapterName = "support-classify" | "support-reply";

export interface TrainedAdapter {
  dir: string;
  report: TrainReport;
}

export interface DemoResult {
  base: string;
  adapters: Record<DemoAdapterName, TrainedAdapter>;
  /** support-classify as launched, without the "feature" category: the demo experiment's control. */
  classifyLaunch: TrainedAdapter;
  /** False when an earlier run's output was reused. */
  trained: boolean;
}

// Bump when the recipe below changes, so a cached demo is retrained.
const RECIPE = 4;
const BATCH = 8;
export const DEMO_RECORD = "demo.json";
const quiet: ProgressSink = { step: () => undefined, event: () => undefined, stop: () => undefined };

/** What the output depends on: the recipe, the seed, the rows and the model's bytes. */
function demoKey(o: DemoTrainOptions): string {
  const hash = createHash("sha256");
  for (const file of ["config.json", "model.safetensors"]) hash.update(readFileSync(join(o.model, file)));
  return JSON.stringify({ recipe: RECIPE, seed: o.seed, rows: o.rows, model: hash.digest("hex") });
}

function paths(o: DemoTrainOptions) {
  const adapters = join(o.out, "adapters");
  return {
    base: join(o.out, `${basename(resolve(o.model))}-warm`),
    classify: join(adapters, "support-classify"),
    launch: join(adapters, "support-classify-launch"),
    reply: join(adapters, "support-reply"),
    record: join(o.out, DEMO_RECORD),
  };
}

function reuse(o: DemoTrainOptions, key: string): DemoResult | null {
  const p = paths(o);
  if (!existsSync(p.record) || readFileSync(p.record, "utf8") !== key) return null;
  const report = (dir: string) =>
    JSON.parse(readFileSync(join(dir, "training_report.json"), "utf8")) as TrainReport;
  return {
    base: p.base,
    adapters: {
      "support-classify": { dir: p.classify, report: report(p.classify) },
      "support-reply": { dir: p.reply, report: report(p.reply) },
    },
    classifyLaunch: { dir: p.launch, report: report(p.launch) },
    trained: false,
  };
}

export async function trainDemo(o: DemoTrainOptions): Promise<DemoResult> {
  const key = demoKey(o);
  const cached = reuse(o, key);
  if (cached) return cached;
  const p = paths(o);
  await warmUpBase(o.model, p.base, { seed: o.seed, threads: o.threads, epochs: 8 });
  const data = writeDemoData(join(o.out, "data"), o.rows, o.seed);
  // Measured on 2 cores (README, Training): 2 epochs are what classification needs, the reply template 3 (at 2
  // it keeps the template's shape but garbles its fields); more sessions than padded lengths, since a rebuilt
  // session costs more than a step.
  const common = {
    base: p.base,
    r: 16,
    targets: "all-linear",
    lr: 3e-3,
    warmup: 5,
    schedule: "cosine",
    batchSize: BATCH,
    epochs: 2,
    seed: o.seed,
    threads: o.threads,
    maxSessions: 8,
    json: true,
  };
  const train = async (name: string, file: string, out: string, valFraction: number, epochs = 2) => ({
    dir: out,
    report: await runTraining(
      parseSettings({ ...common, data: file, out, valFraction, name, epochs }),
      o.sink,
    ),
  });
  const classifyLaunch = await train("support-classify", data.classifyLaunch, p.launch, 0.1);
  const classify = await train("support-classify", data.classify, p.classify, 0.1);
  const reply = await train("support-reply", data.reply, p.reply, 0.05, 3);
  writeFileSync(p.record, key);
  return {
    base: p.base,
    adapters: { "support-classify": classify, "support-reply": reply },
    classifyLaunch,
    trained: true,
  };
}

const command = defineCommand({
  meta: { name: "train-demo", description: "Warm up the demo base and train the demo adapters" },
  args: {
    model: { type: "string", default: ".data/models/demo-llama", description: "demo model directory" },
    out: { type: "string", default: ".data/demo", description: "output directory" },
    seed: { type: "string", default: "7", description: "seed" },
    threads: { type: "string", default: "2", description: "CPU threads" },
    rows: { type: "string", default: "400", description: "tickets per dataset" },
  },
  async run({ args }) {
    const started = performance.now();
    const result = await trainDemo({
      model: args.model,
      out: args.out,
      seed: Number(args.seed),
      threads: Number(args.threads),
      rows: Number(args.rows),
      sink: quiet,
    });
    const all = { "support-classify-launch": result.classifyLaunch, ...result.adapters };
    for (const [name, { dir, report }] of Object.entries(all)) {
      console.log(
        `${name}: ${dir} held-out loss ${report.adapter.loss.toFixed(3)} (base ${report.champion.loss.toFixed(3)}), exact match ${report.adapter.exactMatch ?? "n/a"} (base ${report.champion.exactMatch ?? "n/a"})`,
      );
    }
    const how = result.trained ? "trained" : "reused";
    console.log(`base: ${result.base}; ${how} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  },
});

if (import.meta.main) await runMain(command);
