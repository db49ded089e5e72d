// Usage metering: every inference is recorded with the tokens the runner reported, for plain and streamed
// answers, for streams the client left (the tokens it was sent), and for A/B variants and shadows (a line of
// their own). Read back through GET /admin/usage, whose meter writes to D1 before it is read.
import { beforeEach, describe, expect, it } from "vitest";
import type { UsageLine } from "../../src/contracts/usage.ts";
import {
  ADMIN,
  adapterFiles,
  BASE,
  call,
  callOpen,
  demoBase,
  json,
  newKey,
  newTenant,
  publish,
  runner,
} from "./support/edge.ts";
import { chat, createRoute, twoVersions } from "./support/experiment.ts";
import { cancelled, scriptedRunner, sseEvents, usage } from "./support/usage.ts";

const PIECES = ["Hel", "lo", " the", "re", "!"];

async function infer(key: string, body: Record<string, unknown>) {
  const { res, settled } = await callOpen("POST", "/v1/chat/completions", { token: key, json: body });
  const text = await res.text();
  await settled();
  return { res, text };
}

const sum = (lines: UsageLine[]) => ({
  requests: lines.reduce((n, l) => n + l.requests, 0),
  promptTokens: lines.reduce((n, l) => n + l.promptTokens, 0),
  completionTokens: lines.reduce((n, l) => n + l.completionTokens, 0),
});

let tenant: string;
let key: string;

beforeEach(async () => {
  const spec = await demoBase();
  ({ tenant, key } = await newTenant());
  await publish(key, "support", adapterFiles(spec), { alias: "prod" });
  scriptedRunner({ promptTokens: 7, pieces: PIECES });
});

describe("usage metering", () => {
  it("records a plain answer's usage under the adapter's name@version and the base under its id", async () => {
    const a = await infer(key, chat("support@prod"));
    expect(a.res.status).toBe(200);
    expect(JSON.parse(a.text).usage).toEqual({ prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 });
    await infer(key, chat(BASE));
    await infer(key, chat(BASE));
    const report = await usage(key, "group_by=adapter");
    expect(report.group_by).toBe("adapter");
    expect(
      report.data.map((l) => [l.adapter, l.requests, l.promptTokens, l.completionTokens, l.totalTokens]),
    ).toEqual([
      [BASE, 2, 14, 10, 24],
      ["support@1", 1, 7, 5, 12],
    ]);
    expect(report.data.every((l) => l.tenant === tenant && !l.shadow && l.errors === 0)).toBe(true);
  });

  it("counts a stream the client did not ask usage for, and hides usage from it as the runner would", async () => {
    const { text } = await infer(key, chat("support", { stream: true }));
    const sent = runner.calls[0] as Request;
    expect(((await sent.clone().json()) as { stream_options: unknown }).stream_options).toEqual({
      include_usage: true,
      continuous_usage_stats: true,
    });
    const events = text
      .split("\n\n")
      .filter((e) => e.startsWith("data: {"))
      .map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
    expect(events.length).toBe(PIECES.length + 1);
    expect(events.some((e) => "usage" in e)).toBe(false);
    expect(
      events.map((e) => (e.choices as { delta: { content?: string } }[])[0]?.delta.content).join(""),
    ).toBe(PIECES.join(""));
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    const [line] = (await usage(key, "group_by=adapter")).data;
    expect(line).toMatchObject({
      adapter: "support@1",
      requests: 1,
      promptTokens: 7,
      completionTokens: 5,
      cancelled: 0,
    });
  });

  it("gives include_usage callers null usage until the final chunk, and continuous callers every count", async () => {
    const plain = await infer(
      key,
      chat("support", { stream: true, stream_options: { include_usage: true } }),
    );
    const events = await sseEvents(new Response(plain.text));
    expect(events.slice(0, -1).map((e) => e.usage)).toEqual(Array(PIECES.length + 1).fill(null));
    expect(events.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 5 } });

    const continuous = await infer(
      key,
      chat("support", {
        stream: true,
        stream_options: { include_usage: true, continuous_usage_stats: true },
      }),
    );
    const counts = (await sseEvents(new Response(continuous.text))).map(
      (e) => (e.usage as { completion_tokens: number }).completion_tokens,
    );
    expect(counts).toEqual([0, 1, 2, 3, 4, 5, 5]);
    expect(sum((await usage(key, "group_by=adapter")).data)).toEqual({
      requests: 2,
      promptTokens: 14,
      completionTokens: 10,
    });
  });

  it("bills a stream the client left for the tokens it was sent, and cancels the runner", async () => {
    scriptedRunner({ promptTokens: 7, pieces: PIECES, holdAfter: 3 });
    const before = cancelled.count;
    const { res, settled } = await callOpen("POST", "/v1/chat/completions", {
      token: key,
      json: chat("support", { stream: true }),
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    while ((text.match(/"content":"[^"]+"/g) ?? []).length < 3) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended early: ${text}`);
      text += decoder.decode(value);
    }
    await reader.cancel();
    await settled();
    expect(cancelled.count).toBe(before + 1);
    const [line] = (await usage(key, "group_by=adapter")).data;
    expect(line).toMatchObject({
      adapter: "support@1",
      requests: 1,
      cancelled: 1,
      promptTokens: 7,
      completionTokens: 3,
    });
  });

  it("records refusals and failures with their status and no tokens", async () => {
    runner.handler = () =>
      Response.json(
        {
          error: {
            message: "messages: too long",
            type: "invalid_request_error",
            param: "messages",
            code: "invalid_request",
          },
        },
        { status: 400 },
      );
    expect((await infer(key, chat("support"))).res.status).toBe(400);
    expect((await infer(key, chat("no-such-adapter"))).res.status).toBe(404);
    const report = await usage(key, "group_by=adapter");
    expect(report.data.map((l) => [l.adapter, l.requests, l.errors, l.totalTokens])).toEqual([
      [null, 1, 1, 0],
      ["support@1", 1, 1, 0],
    ]);
  });

  it("groups by key (with its name), by day, and keeps tenants apart; the operator reads across tenants", async () => {
    const second = await newKey(tenant, ["infer"]);
    await infer(key, chat("support"));
    await infer(second, chat("support"));
    await infer(second, chat("support"));
    const other = await newTenant();
    scriptedRunner({ promptTokens: 2, pieces: ["x"] });
    await infer(other.key, chat(BASE));

    const byKey = await usage(key, "group_by=key");
    expect(byKey.data.map((l) => [l.key?.name, l.requests]).sort()).toEqual([
      ["extra", 2],
      ["test", 1],
    ]);
    const today = new Date().toISOString().slice(0, 10);
    expect((await usage(key, "group_by=day")).data).toEqual([
      expect.objectContaining({ day: today, requests: 3, totalTokens: 36 }),
    ]);
    expect(
      (await usage(other.key, "group_by=adapter")).data.map((l) => [l.tenant, l.adapter, l.totalTokens]),
    ).toEqual([[other.tenant, BASE, 3]]);
    const forbidden = await call("GET", `/admin/usage?tenant=${tenant}`, { token: other.key });
    expect(forbidden.status).toBe(403);

    const operator = await usage(ADMIN, `group_by=adapter&tenant=${tenant}`);
    expect(operator.data.map((l) => l.tenant)).toEqual([tenant]);
    const across = await usage(ADMIN, "group_by=adapter");
    // Across tenants, each line names its tenant; both tenants' meters wrote when they were read above.
    expect(
      across.data
        .filter((l) => l.tenant === tenant || l.tenant === other.tenant)
        .map((l) => [l.tenant, l.adapter, l.requests]),
    ).toEqual(
      [
        [tenant, "support@1", 3],
        [other.tenant, BASE, 1],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
  });

  it("refuses a malformed query by name", async () => {
    const bad = async (query: string) =>
      (
        await json<{ error: { param: string; message: string } }>(
          await call("GET", `/admin/usage?${query}`, { token: key }),
          400,
        )
      ).error;
    expect(await bad("group_by=model")).toMatchObject({ param: "group_by" });
    expect(await bad("from=2026-05-02&to=2026-05-01")).toMatchObject({ param: "from" });
    expect((await bad("from=yesterday")).message).toContain("from");
    expect(await bad("from=2024-01-01&to=2026-01-01")).toMatchObject({ param: "to" });
    expect((await bad("limit=3")).message).toContain("limit");
    const infer = await newKey(tenant, ["infer"]);
    expect((await call("GET", "/admin/usage", { token: infer })).status).toBe(403);
  });
});

describe("usage of routes", () => {
  it("meters each variant on its own line and shadows on a separate one, with the runner's counts", async () => {
    const f = await twoVersions();
    scriptedRunner((model) => ({
      promptTokens: 4,
      pieces: model === [...f.labels.keys()][1] ? ["a", "b"] : ["a"],
    }));
    await createRoute(f.key, {
      name: "bot",
      salt: "s1",
      variants: [
        { name: "control", target: "support@prod", weight: 5000 },
        { name: "treatment", target: "support@2", weight: 5000 },
        { name: "candidate", target: "support@2", weight: 10_000, shadow: true },
      ],
    });
    const served: Record<string, number> = {};
    for (let i = 0; i < 6; i++) {
      const { res } = await infer(f.key, chat("bot", { user: `user-${i}` }));
      const variant = res.headers.get("x-variant") as string;
      served[variant] = (served[variant] ?? 0) + 1;
    }
    const lines = (await usage(f.key, "group_by=route")).data;
    const line = (variant: string, shadow: boolean) =>
      lines.find((l) => l.variant === variant && l.shadow === shadow);
    for (const [variant, n] of Object.entries(served)) {
      const per = variant === "treatment" ? 2 : 1;
      expect(line(variant, false)).toMatchObject({
        route: "bot",
        requests: n,
        promptTokens: 4 * n,
        completionTokens: per * n,
      });
    }
    expect(line("candidate", true)).toMatchObject({
      route: "bot",
      requests: 6,
      promptTokens: 24,
      completionTokens: 12,
    });
    const byAdapter = (await usage(f.key, "group_by=adapter")).data;
    expect(byAdapter.filter((l) => l.shadow).map((l) => [l.adapter, l.requests])).toEqual([["support@2", 6]]);
  });
});
