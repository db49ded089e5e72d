// The demo base is random (N(0, 0.02²) weights): its output head cannot put more than about a quarter of
// the probability on any token, so no LoRA adapter on it can answer confidently. Before the demo adapters
// are trained, the trainer's full-parameter mode trains the base's final norm and output head on a bundled
// corpus (the tokenizer's English text and unlabeled ticket text), and writes the result as a new base.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { loadTokenizer } from "../../gpu-runner/engine/tokenizer/index.ts";
import { writeTrainedBase } from "../../gpu-runner/training/base-export.ts";
import type { TokenRow } from "../../gpu-runner/training/batches.ts";
import type { LoraParams } from "../../gpu-runner/training/lora-params.ts";
import { OptimizerConfigSchema } from "../../gpu-runner/training/optimizer.ts";
import { trainLoop } from "../../gpu-runner/training/run.ts";
import { LoraTrainer } from "../../gpu-runner/training/trainer.ts";
import { DEMO_CORPUS } from "../demo-model/corpus.ts";
import { warmUpTickets } from "./tickets.ts";

export const WARM_TENSORS = ["model.norm.weight", "lm_head.weight"];

export interface WarmUpOptions {
  seed: number;
  threads: number;
  epochs: number;
  onStep?: (step: number, loss: number) => void;
}

/**
 * The demo base ships greedy decoding as its default (generation_config.json, which the runner applies to a
 * request that leaves temperature out, as vLLM does): its adapters answer one right text, and at OpenAI's
 * default temperature 1 the tiny model samples word salad out of the reply template. A request that sets a
 * temperature still samples.
 */
function greedyByDefault(dir: string): void {
  const path = join(dir, "generation_config.json");
  const config = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>) : {};
  writeFileSync(path, `${JSON.stringify({ ...config, do_sample: false, temperature: 0 }, null, 2)}\n`);
}

export async function warmUpBase(
  modelDir: string,
  outDir: string,
  o: WarmUpOptions,
): Promise<{ loss: number }> {
  const model = await loadHfModel(modelDir);
  const tok = await loadTokenizer(modelDir);
  const texts = [
    ...DEMO_CORPUS.split("\n").filter((l) => l.trim()),
    ...warmUpTickets(o.seed).map((t) => t.text),
  ];
  const rows: TokenRow[] = texts.map((text) => {
    const tokens = [...tok.encode(text), ...model.eosTokenIds.slice(0, 1)];
    return { tokens, target: tokens.map(() => true) };
  });
  const params: LoraParams = {
    modules: [],
    a: [],
    b: [],
    base: WARM_TENSORS.map((name) => ({
      name,
      dims: model.weights.shape(name),
      data: model.weights.get(name),
    })),
  };
  const optimizer = OptimizerConfigSchema.parse({
    kind: "adamw",
    lr: 1e-2,
    schedule: "cosine",
    warmupSteps: 5,
  });
  const trainer = new LoraTrainer({
    model,
    params,
    optimizer,
    batchSize: 8,
    threads: o.threads,
    dropout: 0,
    seed: o.seed,
    // The corpus lines spread over many padded lengths: with the default 3 sessions most steps rebuild one.
    maxSessions: 12,
  });
  try {
    const history = await trainLoop(trainer, rows, {
      epochs: o.epochs,
      maxSteps: 0,
      accumulation: 1,
      seed: o.seed,
      startStep: 0,
      checkpointEvery: 0,
      onStep: (p) => o.onStep?.(p.step, p.loss),
    });
    writeTrainedBase(model, outDir, params.base ?? []);
    greedyByDefault(outDir);
    return { loss: history[history.length - 1]?.loss ?? Number.NaN };
  } finally {
    await trainer.dispose();
    model.weights.close();
  }
}
