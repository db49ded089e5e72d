// The scheduler over the real engine: chunked prefill equals one-shot prefill, a late joiner does not
// change the rows already running, and an engine failure fails the rows of that step only.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import type { Engine } from "../../gpu-runner/engine/types.ts";
import type {
  GenerationEnd,
  GenerationRequest,
  Scheduler as SchedulerType,
} from "../../gpu-runner/serving/scheduler.ts";
import { createMetrics } from "../../gpu-runner/serving/metrics.ts";
import { Scheduler } from "../../gpu-runner/serving/scheduler.ts";
import { type DemoDirs, makeDemoDirs } from "./serve-helpers.ts";

let dirs: DemoDirs;
let engine: Engine;

beforeAll(async () => {
  dirs = await makeDemoDirs(3);
  engine = await createEngine({ modelDir: dirs.model, maxSlots: 1, maxRank: 8, threads: 1 });
});
afterAll(async () => {
  await engine?.dispose();
  await dirs?.cleanup();
});

const prompt = Array.from({ length: 37 }, (_, i) => (i * 37 + 11) % 500);

function request(promptIds: number[], maxTokens: number): GenerationRequest {
  return {
    promptIds,
    slot: 0,
    adapter: "base",
    maxTokens,
    sampling: { temperature: 0, topP: 1, topK: 0, topLogprobs: null },
    seed: null,
    stopTokenIds: [],
  };
}

function run(
  scheduler: SchedulerType,
  req: GenerationRequest,
): Promise<{ tokens: number[]; end: GenerationEnd }> {
  return new Promise((resolve, reject) => {
    const tokens: number[] = [];
    scheduler.submit(req, {
      onToken: (t) => {
        tokens.push(t.token);
        return false;
      },
      onEnd: (end) => resolve({ tokens, end }),
      onError: reject,
    });
  });
}

describe("scheduler", () => {
  it("gives the same tokens whether the prompt is prefilled whole or in chunks", async () => {
    const whole = new Scheduler({ engine, maxBatch: 4, maxQueue: 4 });
    const chunked = new Scheduler({ engine, maxBatch: 4, maxQueue: 4, prefillTokens: 5 });
    const a = await run(whole, request(prompt, 12));
    const b = await run(chunked, request(prompt, 12));
    expect(b.tokens).toEqual(a.tokens);
    expect(a.end).toEqual({ finishReason: "length", promptTokens: 37, completionTokens: 12 });
    await Promise.all([whole.close(), chunked.close()]);
  });

  it("lets a request join a running batch without changing the running rows", async () => {
    const metrics = createMetrics();
    const scheduler = new Scheduler({ engine, maxBatch: 4, maxQueue: 4, metrics });
    const alone = await run(scheduler, request(prompt, 30));
    const late = await run(scheduler, request(prompt.slice(0, 9), 10));
    const first = run(scheduler, request(prompt, 30));
    await new Promise((r) => setTimeout(r, 15));
    const second = run(scheduler, request(prompt.slice(0, 9), 10));
    expect((await first).tokens).toEqual(alone.tokens);
    expect((await second).tokens).toEqual(late.tokens);
    // they really shared steps: some step held two rows
    const buckets = metrics.batchSize.render();
    const count = (le: string) => Number(buckets.find((l) => l.includes(`le="${le}"`))?.split(" ")[1]);
    expect(count("2") - count("1")).toBeGreaterThan(0);
    await scheduler.close();
  });

  it("fails the rows of a failing step and keeps serving", async () => {
    let failNext = false;
    const flaky: Engine = Object.create(engine, {
      step: {
        value: (rows: Parameters<Engine["step"]>[0]) => {
          if (failNext) {
            failNext = false;
            return Promise.reject(new Error("device lost"));
          }
          return engine.step(rows);
        },
      },
    });
    const scheduler = new Scheduler({ engine: flaky, maxBatch: 4, maxQueue: 4 });
    failNext = true;
    await expect(run(scheduler, request(prompt, 4))).rejects.toThrow("device lost");
    expect((await run(scheduler, request(prompt, 4))).tokens).toHaveLength(4);
    await scheduler.close();
  });
});
