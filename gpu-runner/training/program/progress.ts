// Progress where a person watches (a bar: step, loss, tokens/s, ETA), JSON lines where a program does.
import { SingleBar } from "cli-progress";
import type { Progress } from "../run.ts";

export interface ProgressSink {
  step(p: Progress): void;
  event(kind: string, fields: Record<string, unknown>): void;
  stop(): void;
}

/** JSON lines when asked, or when nobody watches stderr. */
export function wantsJson(json: boolean): boolean {
  return json || !process.stderr.isTTY;
}

export function createProgress(json: boolean): ProgressSink {
  if (wantsJson(json)) {
    const line = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
    return {
      step: (p) =>
        line({
          event: "step",
          step: p.step,
          total_steps: p.totalSteps,
          epoch: p.epoch,
          loss: p.loss,
          lr: p.lr,
          grad_norm: p.gradNorm,
          tokens_per_second: Math.round(p.tokensPerSecond),
          eta_seconds: Math.round(p.etaSeconds),
        }),
      event: (kind, fields) => line({ event: kind, ...fields }),
      stop: () => undefined,
    };
  }
  const bar = new SingleBar({
    format: "train [{bar}] step {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}",
    stream: process.stderr,
  });
  let started = false;
  return {
    step(p) {
      if (!started) bar.start(p.totalSteps, 0, { loss: "-", tps: "-" });
      started = true;
      bar.update(p.step, { loss: p.loss.toFixed(4), tps: Math.round(p.tokensPerSecond) });
    },
    event(kind, fields) {
      if (started) bar.stop();
      started = false;
      process.stderr.write(`${kind}: ${JSON.stringify(fields)}\n`);
    },
    stop: () => bar.stop(),
  };
}
