import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../gpu-runner/serving/http/app.ts";
import { adapterId, validateAdapter } from "../../src/adapters/validate.ts";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { encodeAdapterConfigHeader, RunnerHealthSchema } from "../../src/contracts/runner.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

const TOKEN = "s3cret-runner-token";
let dirs: DemoDirs;
let t: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  const path = await dirs.adapter("support", { seed: 5 });
  t = await startTestRunner(dirs.model, { runnerToken: TOKEN, loras: [{ name: "support", path }] });
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

const auth = { authorization: `Bearer ${TOKEN}` };

describe("RUNNER_TOKEN", () => {
  it("is required on every route but /health and /metrics, which --public-probes opens by default", async () => {
    for (const path of ["/v1/models", "/v1/adapters", "/version"]) {
      const none = await t.app.request(path);
      expect(none.status, path).toBe(401);
      expect((await errorOf(none)).code).toBe("unauthorized");
      expect((await t.app.request(path, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
      expect((await t.app.request(path, { headers: auth })).status, path).toBe(200);
    }
    for (const path of ["/health", "/metrics"]) expect((await t.app.request(path)).status, path).toBe(200);
    const post = await t.app.request("/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "demo-llama", prompt: "x" }),
    });
    expect(post.status).toBe(401);
  });

  it("guards /health and /metrics too with --public-probes false", async () => {
    const closed = createApp({ ...t.runner.deps, publicProbes: false });
    for (const path of ["/health", "/metrics"]) {
      const none = await closed.request(path);
      expect(none.status, path).toBe(401);
      expect((await errorOf(none)).code).toBe("unauthorized");
      expect((await closed.request(path, { headers: auth })).status, path).toBe(200);
    }
  });
});

describe("/health and /metrics", () => {
  it("reports model, device, slots and queue", async () => {
    const health = RunnerHealthSchema.parse(await (await t.app.request("/health", { headers: auth })).json());
    expect(health).toMatchObject({
      status: "ok",
      model: "demo-llama",
      device: "cpu",
      backend: "native",
      maxSlots: 4,
    });
    expect(health.residentAdapters).toBe(1);
    expect(health.queueDepth).toBe(0);
    expect(health.baseModelFingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it("counts requests and tokens per adapter, batch sizes, queue depth, loads", async () => {
    for (const model of ["demo-llama", "support", "support"]) {
      const res = await t.post("/v1/completions", { model, prompt: "Hello", max_tokens: 3, temperature: 0 });
      expect(res.status).toBe(200);
    }
    const res = await t.app.request("/metrics", { headers: auth });
    expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
    const text = await res.text();
    const value = (series: string) =>
      Number(
        text
          .split("\n")
          .find((l) => l.startsWith(`${series} `))
          ?.split(" ")[1],
      );
    const support = t.runner.deps.adapters.find("support")?.adapterId as string;
    expect(support).toMatch(/^[0-9a-f]{64}$/);
    expect(value(`runner_requests_total{adapter_id="${support}"}`)).toBe(2);
    expect(value('runner_requests_total{adapter_id="base"}')).toBe(1);
    expect(value(`runner_generated_tokens_total{adapter_id="${support}"}`)).toBe(6);
    expect(value(`runner_adapter_info{adapter_id="${support}",name="support",label=""}`)).toBe(1);
    expect(value('runner_prompt_tokens_total{adapter_id="base"}')).toBe(
      t.runner.deps.tokenizer.encode("Hello").length,
    );
    expect(value("runner_batch_size_count")).toBeGreaterThanOrEqual(9);
    expect(value('runner_batch_size_bucket{le="+Inf"}')).toBe(value("runner_batch_size_count"));
    expect(value("runner_queue_depth")).toBe(0);
    expect(value("runner_adapter_loads_total")).toBe(1);
    expect(value("runner_adapter_load_seconds_count")).toBe(1);
    expect(text).toContain("# TYPE runner_adapter_evictions_total counter");
    expect(text).toContain("# TYPE runner_batch_size histogram");
  });

  it("keeps two adapters apart when they carry the same label (two tenants' support@3)", async () => {
    const ids: string[] = [];
    for (const seed of [21, 22]) {
      const dir = await dirs.adapter(`tenant-${seed}`, { seed });
      const u = await upload(dir);
      const res = await t.app.request(`/v1/adapters/${u.id}`, {
        method: "PUT",
        headers: {
          ...auth,
          "x-adapter-config": encodeAdapterConfigHeader(u.config),
          "x-weights-sha256": u.sha,
          "x-adapter-name": "support@3",
        },
        body: u.weights,
      });
      expect(res.status).toBe(201);
      ids.push(u.id);
    }
    const [first, second] = ids as [string, string];
    expect(first).not.toBe(second);
    for (const model of [first, first, second]) {
      const res = await t.post("/v1/completions", { model, prompt: "Hi", max_tokens: 2, temperature: 0 });
      expect(res.status).toBe(200);
    }
    const lines = (await (await t.app.request("/metrics", { headers: auth })).text()).split("\n");
    expect(lines).toContain(`runner_requests_total{adapter_id="${first}"} 2`);
    expect(lines).toContain(`runner_requests_total{adapter_id="${second}"} 1`);
    const hi = t.runner.deps.tokenizer.encode("Hi").length;
    expect(lines).toContain(`runner_prompt_tokens_total{adapter_id="${first}"} ${2 * hi}`);
    expect(lines).toContain(`runner_prompt_tokens_total{adapter_id="${second}"} ${hi}`);
    expect(lines).toContain(`runner_adapter_info{adapter_id="${first}",name="",label="support@3"} 1`);
    expect(lines).toContain(`runner_adapter_info{adapter_id="${second}",name="",label="support@3"} 1`);
    expect(lines.filter((l) => l.includes('"support@3"') && !l.startsWith("runner_adapter_info"))).toEqual(
      [],
    );
  });
});

async function upload(dir: string) {
  const config = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
  const weights = new Uint8Array(await readFile(join(dir, "adapter_model.safetensors")));
  const spec = await baseModelSpecFromConfig(
    "demo-llama",
    JSON.parse(await readFile(join(dirs.model, "config.json"), "utf8")),
  );
  const sha = await sha256Hex(weights);
  const validated = validateAdapter({ config, header: readSafetensors(weights), spec });
  return { id: await adapterId(sha, validated), sha, config, weights };
}
