// The system users meet: a client calls the edge (real wrangler dev, local D1 and R2), the edge resolves the
// adapter, picks one of two real runners, streams the weights from R2 into it when it lacks them, and
// passes the answer through. Adapters are published with the real publish script.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Pipeline,
  type PublishedVersion,
  sseEvents,
  startPipeline,
  streamedContent,
} from "./support/pipeline.ts";

let p: Pipeline;
let support: PublishedVersion;

const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "Tell me about the weather." }],
  max_tokens: 12,
  temperature: 0,
  ...extra,
});

interface ChatResponse {
  model: string;
  choices: { message: { content: string } }[];
}

async function content(res: Response): Promise<string> {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return (JSON.parse(text) as ChatResponse).choices[0]?.message.content ?? "";
}

beforeAll(async () => {
  p = await startPipeline({ runners: 2 });
  support = await p.publish(await p.makeAdapter("support", { seed: 11 }), "support", { alias: "prod" });
});
afterAll(async () => {
  await p?.stop();
});

describe("edge ↔ runner pool", () => {
  it("answers through the edge exactly as a runner answers directly for that adapter", async () => {
    // Published with an alias, the version was pushed to a runner in the background before any request.
    const shown = (await (await p.edgeCall("GET", "/admin/adapters/support", p.tenantKey)).json()) as {
      versions: { version: number; adapterId: string }[];
    };
    const adapterId = shown.versions.find((v) => v.version === 1)?.adapterId;
    const holds = async () => {
      for (const runner of p.runners) {
        const listing = (await (await p.runnerCall(runner, "GET", "/v1/adapters")).json()) as {
          data: { adapterId: string }[];
        };
        if (listing.data.some((a) => a.adapterId === adapterId)) return true;
      }
      return false;
    };
    const deadline = Date.now() + 30_000;
    while (!(await holds()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await holds()).toBe(true);
    const first = await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, chat("support@prod"));
    expect(first.headers.get("x-adapter")).toBe("support@1");
    expect(first.headers.get("x-adapter-cold")).toBeNull();
    const timing = first.headers.get("server-timing") ?? "";
    for (const span of ["resolve", "ttft"]) expect(timing).toContain(`${span};dur=`);
    const viaEdge = await content(first);
    expect(viaEdge.length).toBeGreaterThan(0);

    const warm = await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, chat("support@prod"));
    expect(warm.headers.get("x-adapter-cold")).toBeNull();
    expect(await content(warm)).toBe(viaEdge);

    // Directly: each runner loads the same PEFT folder from disk by the vLLM route, then answers.
    for (const runner of p.runners) {
      const loaded = await p.runnerCall(runner, "POST", "/v1/load_lora_adapter", {
        lora_name: "direct-support",
        lora_path: `${p.work}/adapters/support`,
      });
      expect([200, 201]).toContain(loaded.status);
      expect(
        await content(await p.runnerCall(runner, "POST", "/v1/chat/completions", chat("direct-support"))),
      ).toBe(viaEdge);
    }
    // and the base model differs from the adapter, so the comparison above means something
    const base = await content(await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, chat(p.base)));
    expect(base).not.toBe(viaEdge);
  });

  it("streams through the edge: the same text as unstreamed, as SSE chunks ending in [DONE]", async () => {
    const whole = await content(
      await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, chat("support")),
    );
    const res = await p.edgeCall(
      "POST",
      "/v1/chat/completions",
      p.tenantKey,
      chat("support", { stream: true }),
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(res.headers.get("x-adapter")).toBe("support@1");
    const events = sseEvents(await res.text());
    expect(events.at(-1)).toBe("[DONE]");
    expect(events.length).toBeGreaterThan(3);
    expect(streamedContent(events)).toBe(whole);
    // clients see the version they were served, not the runner's content id
    const models = new Set(events.slice(0, -1).map((e) => (JSON.parse(e) as { model: string }).model));
    expect([...models]).toEqual(["support@1"]);
  });

  it("loads a cold adapter once under 10 concurrent first requests", async () => {
    const cold = await p.publish(await p.makeAdapter("cold", { seed: 12 }), "cold");
    const before = await p.adapterLoads();
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, chat("cold"))),
    );
    const texts = await Promise.all(answers.map(content));
    expect(new Set(texts).size).toBe(1);
    expect(answers.some((r) => r.headers.get("x-adapter-cold") === "1")).toBe(true);
    expect((await p.adapterLoads()) - before).toBe(1);
    const holders = [];
    for (const runner of p.runners) {
      const list = (await (await p.runnerCall(runner, "GET", "/v1/adapters")).json()) as {
        data: { adapterId: string }[];
      };
      if (list.data.some((a) => a.adapterId === cold.adapterId)) holders.push(runner.url);
    }
    expect(holders).toHaveLength(1);
  });

  it("serves the official openai client, streaming and not", async () => {
    const client = new OpenAI({ baseURL: `${p.edgeUrl}/v1`, apiKey: p.tenantKey, maxRetries: 0 });
    const { data, response } = await client.chat.completions
      .create({
        model: "support@prod",
        messages: [{ role: "user", content: "Hello!" }],
        max_tokens: 8,
        temperature: 0,
      })
      .withResponse();
    expect(response.headers.get("x-adapter")).toBe("support@1");
    expect(data.model).toBe("support@1");
    const text = data.choices[0]?.message.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    const stream = await client.chat.completions.create({
      model: "support@prod",
      messages: [{ role: "user", content: "Hello!" }],
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    let streamed = "";
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
    expect(streamed).toBe(text);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(expect.arrayContaining([p.base, "support", "support@prod"]));
    await expect(
      client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
    ).rejects.toMatchObject({ status: 404 });
  });

  it("refuses cross-tenant attempts end to end, by name, alias and content id", async () => {
    const other = await p.newTenant("globex");
    for (const model of ["support", "support@prod", "support@1", support.adapterId]) {
      const res = await p.edgeCall("POST", "/v1/chat/completions", other, chat(model));
      expect(res.status, model).toBeGreaterThanOrEqual(400);
      expect(res.status, model).toBeLessThan(500);
      expect(res.headers.get("x-adapter")).toBeNull();
    }
    expect((await p.edgeCall("GET", "/admin/adapters/support", other)).status).toBe(404);
    const moved = await p.edgeCall("PUT", "/admin/adapters/support/aliases/prod", other, { version: 1 });
    expect(moved.status).toBe(404);
    const models = (await (await p.edgeCall("GET", "/v1/models", other)).json()) as {
      data: { id: string }[];
    };
    expect(models.data.map((m) => m.id)).toEqual([p.base]);
    // and the owner still gets its adapter
    expect((await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, chat("support@prod"))).status).toBe(
      200,
    );
  });

  it("cancels the runner's generation when the client goes away mid-stream", async () => {
    const generated = async () => {
      const texts = await Promise.all(
        p.runners.map(async (r) => (await p.runnerCall(r, "GET", "/metrics")).text()),
      );
      return texts
        .flatMap((m) => m.split("\n"))
        .filter((l) => l.startsWith("runner_generated_tokens_total"))
        .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
    };
    // The same greedy request runs 300 tokens without meeting an end token, so a stream of it that ends
    // early was cut by the cancellation, not by the model.
    const reference = await p.edgeCall(
      "POST",
      "/v1/chat/completions",
      p.tenantKey,
      chat("support", { max_tokens: 300 }),
    );
    expect(
      ((await reference.json()) as { choices: { finish_reason: string }[] }).choices[0]?.finish_reason,
    ).toBe("length");
    const before = await generated();
    const controller = new AbortController();
    const res = await fetch(`${p.edgeUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${p.tenantKey}`, "content-type": "application/json" },
      body: JSON.stringify(chat("support", { stream: true, max_tokens: 1800 })),
      signal: controller.signal,
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await reader.read();
    controller.abort();
    const deadline = Date.now() + 10_000;
    let busy = Number.POSITIVE_INFINITY;
    while (Date.now() < deadline && busy > 0) {
      await new Promise((r) => setTimeout(r, 50));
      busy = 0;
      for (const runner of p.runners) {
        const list = (await (await p.runnerCall(runner, "GET", "/v1/adapters")).json()) as {
          data: { adapterId: string; inFlight: number }[];
        };
        busy += list.data.find((a) => a.adapterId === support.adapterId)?.inFlight ?? 0;
      }
    }
    expect(busy).toBe(0);
    expect((await generated()) - before).toBeLessThan(300);
  });
});
