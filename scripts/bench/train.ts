// `npm run bench:train [-- --threads 2 --steps 6]`: LoRA training tokens/s on the runner benchmark shape
// (hidden 512, 8 layers, 8 heads, 4 KV heads, intermediate 1376, vocab 4096, fp32; r=16 on q,k,v,o; AdamW;
// 4 rows × 128 tokens per step), beside PEFT + PyTorch on the same shape and thread count, measured by
// test/fixtures/train/make_train_fixture.py on the GPU machine's CPU (bench-train-peft.json). Prints a
// markdown row for BENCHMARKS.md and a JSON line.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import type { TokenRow } from "../../gpu-runner/training/batches.ts";
import { initLora, trainModules } from "../../gpu-runner/training/lora-params.ts";
import { OptimizerConfigSchema } from "../../gpu-runner/training/optimizer.ts";
import { LoraTrainer } from "../../gpu-runner/training/trainer.ts";
import { PeftLoraConfigSchema } from "../../src/contracts/peft-config.ts";
import { writeSyntheticModel } from "./synthetic-model.ts";

const SHAPE = {
  architecture: "llama" as const,
  hiddenSize: 512,
  numLayers: 8,
  numHeads: 8,
  numKvHeads: 4,
  intermediateSize: 1376,
  vocabSize: 4096,
  maxPositions: 1024,
  seed: 1,
};
const BATCH = 4;
const SEQ = 128;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

function rows(seed: number): TokenRow[] {
  let s = seed;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % SHAPE.vocabSize;
  };
  return Array.from({ length: BATCH }, () => {
    const tokens = Array.from({ length: SEQ }, next);
    return { tokens, target: tokens.map(() => true) };
  });
}

function peftFigure(): { tokensPerSecond: number; cpu: string } | null {
  try {
    const raw = JSON.parse(readFileSync("test/fixtures/train/bench-train-peft.json", "utf8"));
    return { tokensPerSecond: raw.tokens_per_second, cpu: `${raw.machine.cpu}, ${raw.machine.cores} cores` };
  } catch {
    return null;
  }
}

async function measure(threads: number, warmup: number, steps: number) {
  const dir = mkdtempSync(join(tmpdir(), "bench-train-"));
  try {
    writeSyntheticModel(dir, SHAPE);
    const model = await loadHfModel(dir, "bench-llama");
    const config = PeftLoraConfigSchema.parse({
      peft_type: "LORA",
      r: 16,
      lora_alpha: 32,
      target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"],
    });
    const params = initLora(trainModules(config, model.spec), 0);
    const optimizer = OptimizerConfigSchema.parse({
      kind: "adamw",
      lr: 1e-4,
      schedule: "constant",
      maxGradNorm: 0,
    });
    const trainer = new LoraTrainer({
      model,
      params,
      optimizer,
      batchSize: BATCH,
      threads,
      dropout: 0,
      seed: 0,
    });
    const batch = rows(7);
    const times: number[] = [];
    for (let i = 0; i < warmup + steps; i++) {
      const t0 = performance.now();
      await trainer.step([batch], SEQ, warmup + steps);
      if (i >= warmup) times.push((performance.now() - t0) / 1000);
    }
    await trainer.dispose();
    model.weights.close();
    return { times, median: median(times) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const command = defineCommand({
  meta: { name: "bench:train", description: "LoRA training throughput on the runner benchmark shape" },
  args: {
    threads: { type: "string", default: "2", description: "CPU threads" },
    steps: { type: "string", default: "6", description: "timed steps (after 2 warm-up steps)" },
  },
  async run({ args }) {
    const threads = Number(args.threads);
    const steps = Number(args.steps);
    if (!Number.isInteger(threads) || threads < 1)
      throw new Error(`--threads must be an integer >= 1; got "${args.threads}"`);
    if (!Number.isInteger(steps) || steps < 1)
      throw new Error(`--steps must be an integer >= 1; got "${args.steps}"`);
    const ours = await measure(threads, 2, steps);
    const tps = (BATCH * SEQ) / ours.median;
    const peft = peftFigure();
    const ratio = peft ? tps / peft.tokensPerSecond : null;
    const cpu = `${cpus()[0]?.model ?? "cpu"} (${cpus().length} cores)`;
    console.log(
      `| lora-edge trainer (onnxruntime-node CPU) | ${threads} | ${BATCH}×${SEQ} | ${ours.median.toFixed(3)} s | ${tps.toFixed(0)} | ${cpu} |`,
    );
    if (peft)
      console.log(
        `| PEFT + PyTorch (fixture) | 2 | ${BATCH}×${SEQ} | | ${peft.tokensPerSecond.toFixed(0)} | ${peft.cpu} |`,
      );
    console.log(
      JSON.stringify({
        threads,
        batch: BATCH,
        seq: SEQ,
        step_seconds: ours.times,
        tokens_per_second: tps,
        peft_tokens_per_second: peft?.tokensPerSecond ?? null,
        ratio,
      }),
    );
  },
});

await runMain(command);
