// Bounded queue (429 when full) and cancellation: a client that goes away frees its row.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type DemoDirs,
  errorOf,
  makeDemoDirs,
  sseData,
  startTestRunner,
  type TestRunner,
} from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  t = await startTestRunner(dirs.model, { maxBatch: 1, maxQueue: 1 });
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

const long = { model: "demo-llama", prompt: "The", max_tokens: 1500, temperature: 0 };

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("queue and cancellation", () => {
  it("answers 429 queue_full once the batch and the queue are full, and serves again after", async () => {
    const controllers = [new AbortController(), new AbortController()];
    const running = controllers.map((c) => t.post("/v1/completions", long, { signal: c.signal }));
    const { scheduler } = t.runner.deps;
    await until(() => scheduler.runningCount === 1 && scheduler.queueDepth === 1, "one running, one queued");
    const refused = await t.post("/v1/completions", long);
    expect(refused.status).toBe(429);
    const error = await errorOf(refused);
    expect(error).toMatchObject({ code: "queue_full", type: "rate_limit_error" });
    expect(error.message).toMatch(/1 waiting \(max 1\)/);
    for (const c of controllers) c.abort();
    await Promise.allSettled(running);
    await until(() => scheduler.runningCount === 0 && scheduler.queueDepth === 0, "both cancelled");
    const ok = await t.post("/v1/completions", { ...long, max_tokens: 2 });
    expect(ok.status).toBe(200);
  });

  it("frees the row of a streaming client that disconnects mid-stream", async () => {
    const controller = new AbortController();
    const res = await t.post("/v1/completions", { ...long, stream: true }, { signal: controller.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    const { scheduler, metrics } = t.runner.deps;
    expect(scheduler.runningCount).toBe(1);
    const generatedBefore = metrics.generatedTokens.get({ adapter: "base" });
    controller.abort();
    await reader.cancel().catch(() => {});
    await until(() => scheduler.runningCount === 0, "the cancelled row to leave the batch");
    const generatedAfter = metrics.generatedTokens.get({ adapter: "base" });
    expect(generatedAfter - generatedBefore).toBeLessThan(1400);
    // the freed row is usable at once: a new request runs to completion
    const next = await t.post("/v1/completions", { ...long, max_tokens: 3, stream: true });
    expect(sseData(await next.text()).at(-1)).toBe("[DONE]");
  });
});
