// Runners die; requests should not. Real runner processes are SIGKILLed while the edge serves traffic: a
// request whose answer had not started moves to another runner, a stream that had started ends with a clean
// error event, and nothing the client sees names a runner's address or secret.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnerProcess } from "../../scripts/lib/processes.ts";
import { type Pipeline, type PublishedVersion, sseEvents, startPipeline } from "./support/pipeline.ts";

let p: Pipeline;
let faq: PublishedVersion;

const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "Where is my parcel?" }],
  max_tokens: 24,
  temperature: 0,
  ...extra,
});

async function holders(adapterId: string): Promise<RunnerProcess[]> {
  const out: RunnerProcess[] = [];
  for (const runner of p.runners) {
    if (runner.process.exitCode !== null || runner.process.signalCode !== null) continue;
    const res = await p.runnerCall(runner, "GET", "/v1/adapters");
    const list = (await res.json()) as { data: { adapterId: string; inFlight: number }[] };
    if (list.data.some((a) => a.adapterId === adapterId)) out.push(runner);
  }
  return out;
}

function leaks(text: string): string[] {
  return [...p.runners.map((r) => r.url), "127.0.0.1", p.runnerToken].filter((s) => text.includes(s));
}

beforeAll(async () => {
  p = await startPipeline({ runners: 3 });
  faq = await p.publish(await p.makeAdapter("faq", { seed: 21 }), "faq", { alias: "prod" });
});
afterAll(async () => {
  await p?.stop();
});

describe("failover", () => {
  it("ends a stream whose runner dies mid-way with one clean error event and [DONE]", async () => {
    const res = await p.edgeCall(
      "POST",
      "/v1/chat/completions",
      p.tenantKey,
      chat("faq", { stream: true, max_tokens: 1800 }),
    );
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    const [holder] = await holders(faq.adapterId);
    expect(holder).toBeDefined();
    await holder?.kill();
    for (let r = await reader.read(); !r.done; r = await reader.read())
      text += new TextDecoder().decode(r.value);
    const events = sseEvents(text);
    expect(events.at(-1)).toBe("[DONE]");
    const error = JSON.parse(events.at(-2) ?? "{}") as { error?: { code: string; message: string } };
    expect(error.error?.code).toBe("upstream_error");
    // every event before it is whole JSON: no torn chunk reached the client
    for (const e of events.slice(0, -2)) expect(() => JSON.parse(e)).not.toThrow();
    expect(leaks(text)).toEqual([]);
  });

  it("loses no request that had not started streaming when a runner is killed under load", async () => {
    const expected = (await (
      await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, chat("faq@prod"))
    ).json()) as { choices: { message: { content: string } }[] };
    const want = expected.choices[0]?.message.content;
    const [victim] = await holders(faq.adapterId);
    expect(victim).toBeDefined();
    const results: { status: number; text: string }[] = [];
    let sent = 0;
    const worker = async () => {
      while (sent < 24) {
        sent++;
        if (sent === 6) void victim?.kill();
        const res = await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, chat("faq@prod"));
        const body = await res.text();
        results.push({ status: res.status, text: body });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(results).toHaveLength(24);
    for (const r of results) {
      expect(r.status, r.text).toBe(200);
      expect((JSON.parse(r.text) as typeof expected).choices[0]?.message.content).toBe(want);
    }
    expect(victim?.process.signalCode).toBe("SIGKILL");
    expect(await holders(faq.adapterId)).toHaveLength(1);
  });

  it("answers 503 in the OpenAI envelope, naming no address, when no runner is left", async () => {
    for (const runner of p.runners) await runner.kill();
    const res = await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, chat("faq"));
    const text = await res.text();
    expect(res.status).toBe(503);
    expect(JSON.parse(text)).toMatchObject({ error: { code: "unavailable", type: "server_error" } });
    expect(leaks(text)).toEqual([]);
  });
});
