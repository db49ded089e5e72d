// `node scripts/demo-data/train-demo.ts --model <demo model dir> --out <dir>`: what `npm start` needs on
// first start: the warmed-up demo base (<out>/base, see warm-up-base.ts), the demo datasets, and two demo
// adapters trained on it, <out>/adapters/support-classify and <out>/adapters/support-reply (PEFT dirs with
// model cards). Serve <out>/base with them: the adapters are trained against its head.
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { parseSettings } from "../train/settings.ts";
import { runTraining } from "../train/pipeline.ts";
import type { ProgressSink } from "../train/progress.ts";
import type { TrainReport } from "../train/report.ts";
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

export interface DemoResult {
  base: string;
  adapters: Record<"support-classify" | "support-reply", { dir: string; report: TrainReport }>;
}

const quiet: ProgressSink = { step: () => undefined, event: () => undefined, stop: () => undefined };

export async function trainDemo(o: DemoTrainOptions): Promise<DemoResult> {
  const base = join(o.out, "base");
  await warmUpBase(o.model, base, { seed: o.seed, threads: o.threads, epochs: 8 });
  const data = writeDemoData(join(o.out, "data"), o.rows, o.seed);
  const common = {
    base,
    valFraction: 0.1,
    r: 16,
    targets: "all-linear",
    lr: 3e-3,
    warmup: 5,
    schedule: "cosine",
    batchSize: 8,
    seed: o.seed,
    threads: o.threads,
    json: true,
  };
  const classifyDir = join(o.out, "adapters", "support-classify");
  const classify = await runTraining(
    parseSettings({ ...common, data: data.classify, out: classifyDir, epochs: 2, name: "support-classify" }),
    o.sink,
  );
  const replyDir = join(o.out, "adapters", "support-reply");
  const reply = await runTraining(
    parseSettings({
      ...common,
      data: data.reply,
      out: replyDir,
      epochs: 2,
      valFraction: 0.05,
      name: "support-reply",
    }),
    o.sink,
  );
  return {
    base,
    adapters: {
      "support-classify": { dir: classifyDir, report: classify },
      "support-reply": { dir: replyDir, report: reply },
    },
  };
}

const command = defineCommand({
  meta: { name: "train-demo", description: "Warm up the demo base and train the two demo adapters" },
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
    for (const [name, { dir, report }] of Object.entries(result.adapters)) {
      console.log(
        `${name}: ${dir} held-out loss ${report.adapter.loss.toFixed(3)} (base ${report.champion.loss.toFixed(3)}), exact match ${report.adapter.exactMatch ?? "n/a"} (base ${report.champion.exactMatch ?? "n/a"})`,
      );
    }
    console.log(`base: ${result.base}; ${((performance.now() - started) / 1000).toFixed(1)} s`);
  },
});

if (import.meta.main) await runMain(command);
