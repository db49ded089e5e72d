// The training loop: seeded shuffles per epoch, micro-batches of `batchSize` rows, `accumulation` of them per
// optimizer step (all padded to one length bucket), periodic checkpoints, and a progress callback.
import { bucketLength, type TokenRow } from "./batches.ts";
import type { LoraTrainer, StepResult } from "./trainer.ts";

export interface LoopOptions {
  epochs: number;
  /** Stop after this many optimizer steps (0: run the epochs). */
  maxSteps: number;
  accumulation: number;
  seed: number;
  /** Optimizer steps already done (resume): the loop skips them, data order included. */
  startStep: number;
  checkpointEvery: number;
  onCheckpoint?: (step: number, epoch: number) => void | Promise<void>;
  onStep?: (p: Progress) => void;
}

export interface Progress extends StepResult {
  step: number;
  totalSteps: number;
  epoch: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
  etaSeconds: number;
}

/** Fisher–Yates with a small LCG: the order is a function of (seed, epoch) alone, so a resume replays it. */
function shuffled<T>(rows: T[], seed: number, epoch: number): T[] {
  const out = [...rows];
  let s = (seed * 2654435761 + epoch * 97 + 1) >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** The epoch's optimizer steps: each a list of micro-batches. */
export function planEpoch<T extends TokenRow>(
  rows: T[],
  batchSize: number,
  accumulation: number,
  seed: number,
  epoch: number,
): T[][][] {
  const order = shuffled(rows, seed, epoch);
  const micro: T[][] = [];
  for (let i = 0; i < order.length; i += batchSize) micro.push(order.slice(i, i + batchSize));
  const steps: T[][][] = [];
  for (let i = 0; i < micro.length; i += accumulation) steps.push(micro.slice(i, i + accumulation));
  return steps;
}

export function totalSteps(
  rows: number,
  batchSize: number,
  o: Pick<LoopOptions, "epochs" | "maxSteps" | "accumulation">,
): number {
  const perEpoch = Math.ceil(Math.ceil(rows / batchSize) / o.accumulation);
  const all = perEpoch * o.epochs;
  return o.maxSteps > 0 ? Math.min(o.maxSteps, all) : all;
}

export async function trainLoop(trainer: LoraTrainer, rows: TokenRow[], o: LoopOptions): Promise<Progress[]> {
  const batchSize = trainer.options.batchSize;
  const total = totalSteps(rows.length, batchSize, o);
  const history: Progress[] = [];
  const started = performance.now();
  let tokens = 0;
  let step = 0;
  for (let epoch = 0; epoch < o.epochs && step < total; epoch++) {
    for (const micro of planEpoch(rows, batchSize, o.accumulation, o.seed, epoch)) {
      if (step >= total) break;
      step += 1;
      if (step <= o.startStep) continue;
      const seq = bucketLength(Math.max(...micro.flat().map((r) => r.tokens.length)));
      const result = await trainer.step(micro, seq, total);
      tokens += result.tokens;
      const elapsed = (performance.now() - started) / 1000;
      const done = step - o.startStep;
      const p: Progress = {
        ...result,
        step,
        totalSteps: total,
        epoch,
        tokensPerSecond: tokens / elapsed,
        elapsedSeconds: elapsed,
        etaSeconds: (elapsed / done) * (total - step),
      };
      history.push(p);
      o.onStep?.(p);
      if (o.checkpointEvery > 0 && step % o.checkpointEvery === 0 && step < total)
        await o.onCheckpoint?.(step, epoch);
    }
  }
  return history;
}
