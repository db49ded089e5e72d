// `npm run train -- --publish`: the trained PEFT directory goes to the registry through the same client and
// checks as `publish-adapter` (local validation against the edge's base spec, hashed upload, publish), in
// process, with the evaluation as the version's manifest metrics.

import type { EdgeClient } from "../../../cli/edge-client.ts";
import { validateAdapter } from "../../../src/adapters/validate.ts";
import type { VersionResponse } from "../../../src/contracts/admin.ts";
import { openPeftDir, sha256File } from "../../engine/model/peft-dir.ts";
import type { TrainReport } from "./report.ts";

const MiB = 1024 * 1024;

export interface PublishTrainedOptions {
  name: string;
  base: string;
  alias?: string | undefined;
  description: string;
  metrics: Record<string, number>;
}

export async function publishTrained(
  edge: EdgeClient,
  dir: string,
  o: PublishTrainedOptions,
): Promise<VersionResponse> {
  const adapter = await openPeftDir(dir);
  const base = await edge.baseModel(o.base);
  validateAdapter({ name: o.name, config: adapter.config, header: adapter.header, spec: base.spec });
  const sha256 = await sha256File(adapter.weightsPath);
  // publish-adapter's defaults: one request up to 64 MiB, 16 MiB parts above.
  const staged = await edge.upload({
    path: adapter.weightsPath,
    sizeBytes: adapter.sizeBytes,
    sha256,
    multipartThreshold: 64 * MiB,
    partSize: 16 * MiB,
  });
  return await edge.publish(o.name, {
    upload: staged.upload,
    base: base.id,
    config: adapter.config,
    description: o.description,
    metrics: o.metrics,
    ...(o.alias ? { alias: o.alias } : {}),
  });
}

/**
 * The report's figures as manifest metrics (finite numbers only: the manifest refuses null and NaN). Names
 * follow transformers' `eval_*` / `train_*` convention; the champion's figures sit beside the adapter's.
 */
export function metricsOf(r: TrainReport): Record<string, number> {
  const all: Record<string, number | null> = {
    eval_loss: r.adapter.loss,
    eval_perplexity: r.adapter.perplexity,
    eval_exact_match: r.adapter.exactMatch,
    eval_exact_match_rows: r.adapter.exactMatchRows,
    eval_target_tokens: r.adapter.targets,
    champion_eval_loss: r.champion.loss,
    champion_eval_perplexity: r.champion.perplexity,
    champion_eval_exact_match: r.champion.exactMatch,
    champion_version: r.champion.version,
    train_loss: r.finalTrainLoss,
    train_steps: r.steps,
    train_rows: r.data.trainRows,
    validation_rows: r.data.validationRows,
    train_tokens_per_second: r.trainTokensPerSecond,
    train_seconds: r.seconds,
  };
  return Object.fromEntries(
    Object.entries(all).filter(
      (e): e is [string, number] => typeof e[1] === "number" && Number.isFinite(e[1]),
    ),
  );
}

/** The evaluation in one line, stored as the version's description (the model card has the full table). */
export function describe(r: TrainReport): string {
  const f = (e: TrainReport["adapter"]) =>
    `loss ${e.loss.toFixed(4)}, exact match ${e.exactMatch === null ? "n/a" : e.exactMatch.toFixed(3)}`;
  return `trained by npm run train: held-out ${f(r.adapter)}; champion (${r.champion.label}) ${f(r.champion)}`;
}
