// The training run's output beside the adapter: training_report.json (figures, settings) and README.md, a
// model card comparing the new adapter with the champion it would replace on the same held-out rows.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { EvalReport } from "../evaluate.ts";

export interface TrainReport {
  name: string | null;
  baseModel: string;
  data: { file: string; trainRows: number; validationRows: number; badRows: number };
  settings: Record<string, unknown>;
  steps: number;
  finalTrainLoss: number | null;
  trainTokensPerSecond: number | null;
  seconds: number;
  adapter: EvalReport;
  /** `version` is the registry version when the champion is the published `<name>@prod`. */
  champion: EvalReport & { label: string; version: number | null };
}

const fmt = (v: number | null, digits = 4) => (v === null || Number.isNaN(v) ? "n/a" : v.toFixed(digits));
const pct = (v: number | null) => (v === null ? "n/a" : `${(100 * v).toFixed(1)}%`);

export function modelCard(r: TrainReport): string {
  const title = r.name ?? "LoRA adapter";
  const row = (label: string, e: EvalReport) =>
    `| ${label} | ${fmt(e.loss)} | ${fmt(e.perplexity, 2)} | ${pct(e.exactMatch)} (${e.exactMatchRows} rows) |`;
  return [
    `# ${title}`,
    "",
    `A LoRA adapter for \`${r.baseModel}\`, trained by lora-edge's training runner (\`npm run train\`).`,
    "Files: `adapter_config.json` and `adapter_model.safetensors` (Hugging Face PEFT format).",
    "",
    "## Evaluation (held-out rows)",
    "",
    "| model | loss | perplexity | exact match |",
    "| --- | --- | --- | --- |",
    row("this adapter", r.adapter),
    row(`champion: ${r.champion.label}`, r.champion),
    "",
    "## Training",
    "",
    `- data: \`${r.data.file}\`, ${r.data.trainRows} training rows, ${r.data.validationRows} held out, ${r.data.badRows} bad rows skipped`,
    `- ${r.steps} optimizer steps in ${r.seconds.toFixed(1)} s (${fmt(r.trainTokensPerSecond, 0)} tokens/s); last training loss ${fmt(r.finalTrainLoss)}`,
    `- settings: \`${JSON.stringify(r.settings)}\``,
    "",
  ].join("\n");
}

export function writeReport(dir: string, r: TrainReport): void {
  writeFileSync(join(dir, "training_report.json"), `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(join(dir, "README.md"), modelCard(r));
}
