// A vLLM server as a fleet member, through `npm run vllm-sidecar`: the "vLLM server" is our runner, reached
// only through the surface vLLM has (/v1/models, load/unload_lora_adapter by path, the OpenAI API). Adapters
// published at the edge are pushed to the sidecar, written as PEFT folders and loaded by path; beyond
// --max-loras the least recently used one is unloaded, and asking for it again loads it again with the same
// output. The edge needs nothing for it but the member's limits: a rank beyond them is refused at publish.
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeDemoAdapter } from "../../scripts/demo-model/adapter.ts";
import { writeDemoModel } from "../../scripts/demo-model/index.ts";
import { EdgeAdmin } from "../../scripts/lib/dev-setup.ts";
import {
  applyMigrations,
  type Child,
  freePort,
  type RunnerProcess,
  spawnChild,
  startEdge,
  startRunner,
  waitUntilReady,
} from "../../scripts/lib/processes.ts";
import type { PoolEntry } from "../../src/contracts/fleet.ts";
import { RunnerReadySchema } from "../../src/contracts/runner.ts";

const ADMIN = "sidecar-operator-token-0123456789";
const EDGE_TO_RUNNERS = "sidecar-runner-token-0123456789";
const VLLM_KEY = "sidecar-vllm-key-0123456789";

let work: string;
let vllm: RunnerProcess;
let sidecar: Child;
let sidecarUrl: string;
let admin: EdgeAdmin;
let edgeUrl: string;
let key: string;
let base: string;
const children: Child[] = [];

async function publish(name: string, seed: number, rank = 4): Promise<Response> {
  const a = makeDemoAdapter({ seed, rank });
  const sha = createHash("sha256").update(a.weights).digest("hex");
  const staged = (await admin.expect(
    await fetch(`${edgeUrl}/admin/uploads`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/octet-stream",
        "x-content-sha256": sha,
      },
      body: a.weights,
    }),
    [201],
    "upload",
  )) as { upload: string };
  return await admin.call("POST", `/admin/adapters/${name}/versions`, key, {
    upload: staged.upload,
    base,
    config: a.config,
  });
}

async function ask(model: string): Promise<{ status: number; content: string; adapter: string | null }> {
  const res = await admin.call("POST", "/v1/chat/completions", key, {
    model,
    messages: [{ role: "user", content: "Where is my parcel?" }],
    max_tokens: 12,
    temperature: 0,
  });
  const text = await res.text();
  const content = res.ok
    ? ((JSON.parse(text) as { choices: { message: { content: string } }[] }).choices[0]?.message.content ??
      "")
    : text;
  return { status: res.status, content, adapter: res.headers.get("x-adapter") };
}

async function vllmAdapters(): Promise<string[]> {
  const res = await fetch(`${vllm.url}/v1/models`, { headers: { authorization: `Bearer ${VLLM_KEY}` } });
  const list = (await res.json()) as { data: { id: string; parent: string | null }[] };
  return list.data.filter((m) => m.parent !== null).map((m) => m.id);
}

async function sidecarMetric(name: string): Promise<number> {
  const text = await (await fetch(`${sidecarUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "lora-edge-sidecar-"));
  const model = join(work, "demo-llama");
  await writeDemoModel({ out: model, seed: 0 });
  vllm = await startRunner({
    model,
    port: await freePort(),
    token: VLLM_KEY,
    args: ["--threads", "1", "--max-loras", "2"],
  });
  children.push(vllm);
  const persistTo = join(work, "state");
  await applyMigrations(persistTo);
  const edge = await startEdge({
    persistTo,
    port: await freePort(),
    adminToken: ADMIN,
    runnerToken: EDGE_TO_RUNNERS,
    runners: [],
  });
  children.push(edge);
  edgeUrl = edge.url;
  admin = new EdgeAdmin(edge.url);
  base = await admin.registerBase(ADMIN, model);
  key = await admin.tenantKey(ADMIN, "acme");
  await admin.expect(await admin.call("POST", "/admin/tenants", ADMIN, { name: "ops" }), [201], "tenant");
  const fleet = (await admin.expect(
    await admin.call("POST", "/admin/keys", ADMIN, { tenant: "ops", name: "fleet", scopes: ["runner"] }),
    [201],
    "fleet key",
  )) as { key: string };
  const port = await freePort();
  sidecarUrl = `http://127.0.0.1:${port}`;
  sidecar = spawnChild(
    "vllm-sidecar",
    process.execPath,
    [
      "scripts/vllm-sidecar.ts",
      "--vllm",
      vllm.url,
      "--dir",
      join(work, "lora"),
      "--join",
      edge.url,
      "--port",
      String(port),
      "--max-loras",
      "2",
    ],
    { env: { FLEET_TOKEN: fleet.key, VLLM_API_KEY: VLLM_KEY, RUNNER_TOKEN: EDGE_TO_RUNNERS } },
  );
  children.push(sidecar);
  await waitUntilReady(`${sidecarUrl}/health`, sidecar);
  for (;;) {
    const list = (await admin.expect(await admin.call("GET", "/admin/runners", ADMIN), [200], "runners")) as {
      data: PoolEntry[];
    };
    if (list.data.some((e) => e.url === sidecarUrl)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
}, 300_000);

afterAll(async () => {
  await Promise.all(children.map((c) => c.stop()));
  if (work) await rm(work, { recursive: true, force: true });
});

describe("a vLLM server behind the sidecar", () => {
  it("joins as a vllm member with the limits it was given", async () => {
    const list = (await admin.expect(await admin.call("GET", "/admin/runners", ADMIN), [200], "runners")) as {
      data: PoolEntry[];
    };
    expect(list.data).toHaveLength(1);
    expect(list.data[0]).toMatchObject({ kind: "vllm", baseModel: base, maxLoraRank: 16, slots: 2 });
  });

  it("refuses at publish a rank wider than the member's --max-lora-rank", async () => {
    const res = await publish("wide", 9, 32);
    const body = (await res.json()) as { error: { param: string; message: string } };
    expect(res.status).toBe(409);
    expect(body.error.param).toBe("config.r");
    expect(body.error.message).toContain("got 32");
  });

  it("serves published adapters through vLLM's load API, evicts beyond --max-loras and loads again", async () => {
    for (const [i, name] of ["a0", "a1", "a2"].entries())
      expect((await publish(name, 50 + i)).status).toBe(201);
    const first = new Map<string, string>();
    for (const name of ["a0", "a1", "a2"]) {
      const r = await ask(name);
      expect(r.status, r.content).toBe(200);
      expect(r.adapter).toBe(`${name}@1`);
      first.set(name, r.content);
      expect((await vllmAdapters()).length).toBeLessThanOrEqual(2);
    }
    expect(new Set(first.values()).size).toBe(3);
    const baseAnswer = await ask(base);
    expect(baseAnswer.status).toBe(200);
    expect([...first.values()]).not.toContain(baseAnswer.content);
    // a0 was the least recently used: unloaded from vLLM and its folder removed
    expect(await sidecarMetric("runner_adapter_evictions_total")).toBeGreaterThanOrEqual(1);
    expect((await readdir(join(work, "lora"))).length).toBe(2);
    const again = await ask("a0");
    expect(again.status).toBe(200);
    expect(again.content).toBe(first.get("a0"));
    expect(await sidecarMetric("runner_adapter_loads_total")).toBe(4);
    expect((await vllmAdapters()).length).toBe(2);
  });

  it("is ready while vLLM answers; on SIGTERM fails /ready, finishes the running stream, leaves and exits 0", async () => {
    const ready = await fetch(`${sidecarUrl}/ready`);
    expect(ready.status).toBe(200);
    expect(RunnerReadySchema.parse(await ready.json())).toEqual({ status: "ready", model: base });
    // a long stream straight to the sidecar, as the edge sends one, still running when the drain starts
    const stream = await fetch(`${sidecarUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${EDGE_TO_RUNNERS}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: base,
        messages: [{ role: "user", content: "Tell me a long story." }],
        max_tokens: 1500,
        ignore_eos: true,
        stream: true,
      }),
    });
    expect(stream.status).toBe(200);
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    process.kill(sidecar.process.pid as number, "SIGTERM");
    // the drain has begun once it says so, with the stream counted
    while (!sidecar.log().includes("draining: 1 request(s) in flight"))
      await new Promise((r) => setTimeout(r, 50));
    const draining = await fetch(`${sidecarUrl}/ready`);
    expect(draining.status).toBe(503);
    const refusal = (await draining.json()) as { error: { code: string; message: string } };
    expect(refusal.error.code).toBe("unavailable");
    expect(refusal.error.message).toContain("draining");
    // liveness holds while it drains: an orchestrator must not restart it now
    expect((await fetch(`${sidecarUrl}/health`)).status).toBe(200);
    for (let r = await reader.read(); !r.done; r = await reader.read())
      text += new TextDecoder().decode(r.value);
    const events = text.split("\n").filter((l) => l.startsWith("data: "));
    expect(events.at(-1)).toBe("data: [DONE]");
    expect(text).not.toContain('"error"');
    expect(await sidecar.exited).toBe(0);
    const list = (await admin.expect(await admin.call("GET", "/admin/runners", ADMIN), [200], "runners")) as {
      data: PoolEntry[];
    };
    expect(list.data).toEqual([]);
    const res = await ask("a1");
    expect(res.status).toBe(503);
  });

  it("fails /ready while its vLLM server does not answer, and /health stays its liveness", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const alone = spawnChild(
      "vllm-sidecar (no fleet)",
      process.execPath,
      [
        "scripts/vllm-sidecar.ts",
        "--vllm",
        vllm.url,
        "--dir",
        join(work, "lora-alone"),
        "--port",
        String(port),
      ],
      { env: { VLLM_API_KEY: VLLM_KEY, RUNNER_TOKEN: EDGE_TO_RUNNERS } },
    );
    children.push(alone);
    await waitUntilReady(`${url}/ready`, alone);
    await vllm.stop(20_000);
    const res = await fetch(`${url}/ready`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("unavailable");
    expect(body.error.message).toContain("/health");
    expect((await fetch(`${url}/health`)).status).toBe(200);
    await alone.stop(20_000);
    expect(await alone.exited).toBe(0);
  });
});
