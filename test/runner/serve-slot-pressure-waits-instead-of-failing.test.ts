// More adapters than slots under load: 28 concurrent streams over 14 adapters on 8 slots all succeed, each
// with the output its adapter gives alone. Requests whose adapter finds every slot busy wait for one (the
// scheduler swaps adapters in from host memory between steps) instead of failing; past the slot deadline a
// request is refused with 503, and the rows already running are unaffected.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import {
  type DemoDirs,
  errorOf,
  makeDemoDirs,
  sseData,
  startTestRunner,
  type TestRunner,
} from "./serve-helpers.ts";

const ADAPTERS = 14;
const STREAMS = 28;
const SLOTS = 8;
const MAX_TOKENS = 12;

let dirs: DemoDirs;
const paths: string[] = [];

beforeAll(async () => {
  dirs = await makeDemoDirs();
  for (let i = 0; i < ADAPTERS; i++) paths.push(await dirs.adapter(`a${i}`, { seed: 100 + i, rank: 8 }));
});
afterAll(async () => {
  await dirs?.cleanup();
});

const promptOf = (i: number) => `Stream ${i}: the weather today is`;

async function loadAll(t: TestRunner): Promise<void> {
  for (const [i, path] of paths.entries()) {
    const res = await t.post("/v1/load_lora_adapter", { lora_name: `a${i}`, lora_path: path });
    expect([200, 201]).toContain(res.status);
  }
}

async function alone(t: TestRunner, model: string, prompt: string): Promise<string> {
  const res = await t.post("/v1/completions", { model, prompt, max_tokens: MAX_TOKENS, temperature: 0 });
  expect(res.status).toBe(200);
  return CompletionSchema.parse(await res.json()).choices[0]?.text ?? "";
}

/** One streamed completion: its status, and the text of its deltas when it succeeded. */
async function streamed(t: TestRunner, model: string, prompt: string) {
  const res = await t.post("/v1/completions", {
    model,
    prompt,
    max_tokens: MAX_TOKENS,
    temperature: 0,
    stream: true,
  });
  const body = await res.text();
  if (res.status !== 200) return { status: res.status, text: body, error: null as string | null };
  const events = sseData(body);
  expect(events.at(-1)).toBe("[DONE]");
  let text = "";
  let error: string | null = null;
  for (const data of events.slice(0, -1)) {
    const chunk = JSON.parse(data);
    if (chunk.error) error = JSON.stringify(chunk.error);
    else text += chunk.choices[0]?.text ?? "";
  }
  return { status: res.status, text, error };
}

function counter(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

describe("slot pressure", () => {
  it(`serves ${STREAMS} concurrent streams over ${ADAPTERS} adapters on ${SLOTS} slots, each as its adapter alone`, async () => {
    // the reference: every adapter has a slot of its own and each request runs alone
    const wide = await startTestRunner(dirs.model, { maxLoras: ADAPTERS, maxBatch: 8 });
    const expected: string[] = [];
    try {
      await loadAll(wide);
      for (let i = 0; i < STREAMS; i++) expected.push(await alone(wide, `a${i % ADAPTERS}`, promptOf(i)));
    } finally {
      await wide.close();
    }
    // the adapters really differ, so a row served with another row's adapter would show
    expect(new Set(expected.slice(0, ADAPTERS)).size).toBeGreaterThan(ADAPTERS / 2);

    const t = await startTestRunner(dirs.model, {
      maxLoras: SLOTS,
      maxBatch: 16,
      maxQueue: STREAMS,
      tiers: { maxCpuLoras: ADAPTERS },
    });
    try {
      await loadAll(t);
      const loads = t.runner.deps.metrics.adapterLoads.get();
      const results = await Promise.all(
        Array.from({ length: STREAMS }, (_, i) => streamed(t, `a${i % ADAPTERS}`, promptOf(i))),
      );
      expect(results.map((r) => [r.status, r.error])).toEqual(results.map(() => [200, null]));
      expect(results.map((r) => r.text)).toEqual(expected);
      // nothing was loaded again: every refill came from host memory
      expect(t.runner.deps.metrics.adapterLoads.get()).toBe(loads);
      const metrics = await (await t.app.request("/metrics")).text();
      expect(counter(metrics, "runner_adapter_slot_waits_total")).toBeGreaterThan(0);
      expect(counter(metrics, "runner_adapter_slot_writes_total", '{source="host"}')).toBeGreaterThan(0);
      expect(counter(metrics, "runner_adapter_slot_wait_timeouts_total")).toBe(0);
    } finally {
      await t.close();
    }
  });

  it("refuses with 503 a request whose wait for a slot passes the deadline, and the running stream goes on", async () => {
    // one slot, a deadline of 0: the second adapter's request is refused at the first pass that finds it
    // still waiting, while the first adapter's stream holds the slot
    const t = await startTestRunner(dirs.model, {
      maxLoras: 1,
      maxBatch: 4,
      tiers: { slotWaitMs: 0 },
    });
    try {
      for (const i of [0, 1]) {
        const res = await t.post("/v1/load_lora_adapter", { lora_name: `a${i}`, lora_path: paths[i] });
        expect(res.status).toBe(201);
      }
      const controller = new AbortController();
      const running = t.post(
        "/v1/completions",
        { model: "a0", prompt: promptOf(0), max_tokens: 200, temperature: 0, ignore_eos: true, stream: true },
        { signal: controller.signal },
      );
      const first = await running;
      expect(first.status).toBe(200);
      const reader = (first.body as ReadableStream<Uint8Array>).getReader();
      // the stream has started: a0 holds the only slot
      await reader.read();
      const refused = await t.post("/v1/completions", {
        model: "a1",
        prompt: promptOf(1),
        max_tokens: 4,
        temperature: 0,
      });
      expect(refused.status).toBe(503);
      const error = await errorOf(refused);
      expect(error.code).toBe("unavailable");
      expect(error.message).toContain("no adapter slot freed within 0 ms");
      // the running stream was not disturbed: it goes on to its end
      let text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
      expect(text).not.toContain('"error"');
      const metrics = await (await t.app.request("/metrics")).text();
      expect(counter(metrics, "runner_adapter_slot_wait_timeouts_total")).toBe(1);
      // once the slot is free, a1 is served
      expect((await t.post("/v1/completions", { model: "a1", prompt: "x", max_tokens: 2 })).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});
