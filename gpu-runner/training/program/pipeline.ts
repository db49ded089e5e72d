// One training run from validated settings: load base and data, build or resume the adapter, train, evaluate
// the result and the champion on the same held-out rows, write the PEFT directory, checkpoints and report.
import { existsSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { PeftLoraConfigSchema } from "../../../src/contracts/peft-config.ts";
import { AppError } from "../../../src/errors.ts";
import { type HfModel, loadHfModel } from "../../engine/model/hf-model.ts";
import { readPeftDir } from "../../engine/model/peft-dir.ts";
import { loadTokenizer, type RunnerTokenizer } from "../../engine/tokenizer/index.ts";
import { type Example, parseJsonl, splitExamples } from "../data.ts";
import { type EvalReport, exactMatch, heldOutLoss } from "../evaluate.ts";
import { initLora, type LoraParams, paramsFromAdapter, trainModules } from "../lora-params.ts";
import { OptimizerConfigSchema } from "../optimizer.ts";
import { type ExportLoraConfig, readCheckpointState, writeCheckpoint, writePeftDir } from "../peft-export.ts";
import { trainLoop } from "../run.ts";
import { LoraTrainer } from "../trainer.ts";
import { type Champion, resolveChampion } from "./champion.ts";
import type { ProgressSink } from "./progress.ts";
import { type TrainReport, writeReport } from "./report.ts";
import { type TrainSettings, targetModules } from "./settings.ts";

function readData(path: string, tok: RunnerTokenizer, model: HfModel, s: TrainSettings, sink: ProgressSink) {
  if (!existsSync(path)) throw new AppError("invalid_request", `--data ${path}: no such file`);
  const { examples, bad } = parseJsonl(readFileSync(path, "utf8"), tok, model.eosTokenIds, {
    allTokens: s.allTokens,
    // Training's graph has the model's sliding-window masks, so examples may use the whole context.
    maxTokens: Math.min(s.maxTokens, model.maxPositions),
  });
  for (const b of bad) sink.event("bad_row", { file: path, line: b.line, problem: b.problem });
  if (bad.length > 0 && !s.skipBadRows) {
    const first = bad.slice(0, 5).map((b) => `line ${b.line}: ${b.problem}`);
    throw new AppError(
      "invalid_request",
      `${path}: ${bad.length} bad row(s) (pass --skip-bad-rows to train without them): ${first.join("; ")}`,
      {
        details: bad.map((b) => `line ${b.line}: ${b.problem}`),
      },
    );
  }
  if (examples.length === 0) throw new AppError("invalid_request", `${path}: no usable rows`);
  return { examples, bad: bad.length };
}

function startParams(s: TrainSettings, model: HfModel, exportConfig: ExportLoraConfig): LoraParams {
  const config = PeftLoraConfigSchema.parse({
    peft_type: "LORA",
    r: exportConfig.r,
    lora_alpha: exportConfig.loraAlpha,
    use_rslora: exportConfig.useRslora,
    target_modules: exportConfig.targetModules,
  });
  const modules = trainModules(config, model.spec);
  const from = s.resume ?? s.init;
  return from ? paramsFromAdapter(modules, readPeftDir(from, model.spec)) : initLora(modules, s.seed);
}

async function evaluateAll(
  model: HfModel,
  tok: RunnerTokenizer,
  trainer: LoraTrainer,
  params: LoraParams | null,
  rows: Example[],
  threads: number,
): Promise<EvalReport> {
  const { loss, targets } =
    params === null ? await baseLoss(trainer, rows) : await heldOutLoss(trainer, rows);
  const em = await exactMatch(model, tok, params, rows, threads);
  return { loss, perplexity: Math.exp(loss), targets, exactMatch: em.accuracy, exactMatchRows: em.rows };
}

/** A champion adapter (its own modules, ranks and scales) on the same rows. */
async function evaluateChampion(
  dir: string,
  model: HfModel,
  tok: RunnerTokenizer,
  trainer: LoraTrainer,
  rows: Example[],
) {
  const weights = readPeftDir(dir, model.spec);
  const byName = new Map(model.spec.modules.map((m) => [m.name, m]));
  const modules = weights.modules.map((w) => {
    const m = byName.get(w.module) as { inFeatures: number; outFeatures: number };
    return {
      name: w.module,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
      rank: w.rank,
      scale: w.scale,
    };
  });
  const params = paramsFromAdapter(modules, weights);
  const other = new LoraTrainer({ ...trainer.options, params });
  try {
    return await evaluateAll(model, tok, other, params, rows, trainer.options.threads);
  } finally {
    await other.dispose();
  }
}

/** The base model's loss: the same graph with B zeroed (LoRA adds exactly nothing then). */
async function baseLoss(trainer: LoraTrainer, rows: Example[]) {
  const b = trainer.params.b.map((t) => Float32Array.from(t));
  for (const t of trainer.params.b) t.fill(0);
  try {
    return await heldOutLoss(trainer, rows);
  } finally {
    trainer.params.b.forEach((t, k) => {
      t.set(b[k] as Float32Array);
    });
  }
}

/** `champion` defaults to --champion, else the base; gpu-runner/training/main.ts passes the edge's `<name>@prod`. */
export async function runTraining(
  s: TrainSettings,
  sink: ProgressSink,
  champion?: Champion,
): Promise<TrainReport> {
  const started = performance.now();
  const chosen = champion ?? (await resolveChampion(s, null));
  const model = await loadHfModel(s.base, s.baseId);
  const championLabel = chosen.label ?? `base ${model.id}`;
  sink.event("champion", { label: championLabel, version: chosen.version });
  const tok = await loadTokenizer(s.base);
  const data = readData(s.data, tok, model, s, sink);
  const split = s.val
    ? { train: data.examples, validation: readData(s.val, tok, model, s, sink).examples }
    : splitExamples(data.examples, s.valFraction, s.seed);
  const exportConfig: ExportLoraConfig = {
    r: s.r,
    loraAlpha: s.alpha ?? 2 * s.r,
    useRslora: s.rslora,
    targetModules: targetModules(s),
    dropout: s.dropout,
    baseModel: model.id,
  };
  const params = startParams(s, model, exportConfig);
  const optimizer = OptimizerConfigSchema.parse({
    kind: s.optimizer,
    lr: s.lr,
    weightDecay: s.weightDecay,
    warmupSteps: s.warmup,
    schedule: s.schedule,
    maxGradNorm: s.maxGradNorm,
  });
  const resumed = s.resume ? readCheckpointState(s.resume, params.a.length * 2) : null;
  const trainer = new LoraTrainer(
    {
      model,
      params,
      optimizer,
      batchSize: s.batchSize,
      threads: s.threads,
      dropout: s.dropout,
      seed: s.seed,
      maxSessions: s.maxSessions,
    },
    resumed?.opt,
  );
  try {
    sink.event("start", {
      train_rows: split.train.length,
      validation_rows: split.validation.length,
      modules: params.modules.length,
    });
    const history = await trainLoop(trainer, split.train, {
      epochs: s.epochs,
      maxSteps: s.maxSteps,
      accumulation: s.accumulation,
      seed: s.seed,
      startStep: resumed?.state.step ?? 0,
      checkpointEvery: s.checkpointEvery,
      onStep: (p) => sink.step(p),
      onCheckpoint: (step, epoch) =>
        writeCheckpoint(join(s.out, "checkpoints", `step-${step}`), params, exportConfig, trainer.state, {
          step,
          epoch,
          seed: s.seed,
        }),
    });
    writePeftDir(s.out, params, exportConfig);
    const adapter = await evaluateAll(model, tok, trainer, params, split.validation, s.threads);
    const championEval = chosen.dir
      ? await evaluateChampion(chosen.dir, model, tok, trainer, split.validation)
      : await evaluateAll(model, tok, trainer, null, split.validation, s.threads);
    const last = history[history.length - 1];
    const report: TrainReport = {
      name: s.name ?? null,
      baseModel: model.id,
      data: {
        file: basename(resolve(s.data)),
        trainRows: split.train.length,
        validationRows: split.validation.length,
        badRows: data.bad,
      },
      settings: {
        ...exportConfig,
        optimizer,
        epochs: s.epochs,
        batchSize: s.batchSize,
        accumulation: s.accumulation,
        seed: s.seed,
      },
      steps: last?.step ?? 0,
      finalTrainLoss: last?.loss ?? null,
      trainTokensPerSecond: last?.tokensPerSecond ?? null,
      seconds: (performance.now() - started) / 1000,
      adapter,
      champion: { ...championEval, label: championLabel, version: chosen.version },
    };
    writeReport(s.out, report);
    return report;
  } finally {
    await trainer.dispose();
    model.weights.close();
  }
}
