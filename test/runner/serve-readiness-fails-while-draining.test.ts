// Readiness on the real runner app (engine on onnxruntime, real tokenizer), wired to the drain gate as main.ts
// wires it: /ready answers 200 while the runner takes work and 503 (OpenAI envelope, code unavailable) once it
// drains, so an orchestrator stops routing to it, while /health, vLLM's liveness probe, stays 200 until exit.
// Both are probes: with --public-probes they need no key, without it they need the runner's key.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DrainGate } from "../../gpu-runner/serving/fleet.ts";
import { createApp } from "../../gpu-runner/serving/http/app.ts";
import { RunnerHealthSchema, RunnerReadySchema } from "../../src/contracts/runner.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

const KEY = "runner-secret";
let dirs: DemoDirs;
let runner: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  runner = await startTestRunner(dirs.model, { runnerToken: KEY });
});
afterAll(async () => {
  await runner?.close();
  await dirs?.cleanup();
});

describe("readiness", () => {
  it("is ready until the gate drains, then 503 with the reason while /health stays 200", async () => {
    const gate = new DrainGate();
    const app = createApp({ ...runner.runner.deps, drain: gate });
    const fetchThrough = gate.wrap((request) => app.fetch(request));
    const ready = await fetchThrough(new Request("http://runner/ready"));
    expect(ready.status).toBe(200);
    expect(RunnerReadySchema.parse(await ready.json())).toEqual({ status: "ready", model: "demo-llama" });
    gate.drain();
    const draining = await fetchThrough(new Request("http://runner/ready"));
    expect(draining.status).toBe(503);
    expect(draining.headers.get("retry-after")).toBe("1");
    const error = await errorOf(draining);
    expect(error.code).toBe("unavailable");
    expect(error.message).toContain("draining");
    const health = await fetchThrough(new Request("http://runner/health"));
    expect(health.status).toBe(200);
    expect(RunnerHealthSchema.parse(await health.json()).status).toBe("ok");
  });

  it("answers without the key with --public-probes, and only with it otherwise", async () => {
    const open = createApp({ ...runner.runner.deps, publicProbes: true });
    expect((await open.request("/ready")).status).toBe(200);
    const closed = createApp({ ...runner.runner.deps, publicProbes: false });
    expect((await closed.request("/ready")).status).toBe(401);
    const keyed = await closed.request("/ready", { headers: { authorization: `Bearer ${KEY}` } });
    expect(keyed.status).toBe(200);
  });

  it("without a drain gate (an app built without one) the runner is always ready", async () => {
    const res = await runner.app.request("/ready", { headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(200);
  });
});
