// Adapter residency over HTTP: PUT by content id (sha verified), vLLM load/unload, LRU eviction from slots
// (the evicted adapter stays in host memory), pinning.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterId, validateAdapter } from "../../src/adapters/validate.ts";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import {
  AdapterLoadResponseSchema,
  encodeAdapterConfigHeader,
  ResidentAdapterListSchema,
} from "../../src/contracts/runner.ts";
import { RunnerModelListSchema } from "../../src/contracts/runner-vllm.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;
const paths: Record<string, string> = {};

interface Upload {
  id: string;
  sha: string;
  config: unknown;
  weights: Uint8Array;
}

async function upload(name: string): Promise<Upload> {
  const dir = paths[name] as string;
  const config = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
  const weights = new Uint8Array(await readFile(join(dir, "adapter_model.safetensors")));
  const spec = await baseModelSpecFromConfig(
    "demo-llama",
    JSON.parse(await readFile(join(dirs.model, "config.json"), "utf8")),
  );
  const validated = validateAdapter({ config, header: readSafetensors(weights), spec });
  const sha = await sha256Hex(weights);
  return { id: await adapterId(sha, validated), sha, config, weights };
}

function put(u: Upload, headers: Record<string, string> = {}) {
  return t.app.request(`/v1/adapters/${u.id}`, {
    method: "PUT",
    headers: {
      "x-adapter-config": encodeAdapterConfigHeader(u.config),
      "x-weights-sha256": u.sha,
      ...headers,
    },
    body: u.weights,
  });
}

async function resident(): Promise<string[]> {
  const list = ResidentAdapterListSchema.parse(await (await t.app.request("/v1/adapters")).json());
  return list.data.map((a) => a.name ?? a.adapterId);
}

async function ask(model: string) {
  return t.post("/v1/completions", { model, prompt: "Hi", max_tokens: 2, temperature: 0 });
}

beforeAll(async () => {
  dirs = await makeDemoDirs();
  for (const [k, name] of ["pinned", "a", "b", "c"].entries())
    paths[name] = await dirs.adapter(name, { seed: 10 + k });
  t = await startTestRunner(dirs.model, {
    loras: [{ name: "pinned", path: paths.pinned as string }],
    maxLoras: 3,
  });
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

describe("adapter residency", () => {
  it("loads by content id, then answers requests naming that id", async () => {
    const a = await upload("a");
    expect((await ask(a.id)).status).toBe(409);
    const res = await put(a);
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body).toMatchObject({
      loaded: true,
      adapter: { adapterId: a.id, rank: 8, modules: 8, pinned: false },
    });
    expect((await ask(a.id)).status).toBe(200);
    const again = await put(a);
    expect(again.status).toBe(200);
    expect(AdapterLoadResponseSchema.parse(await again.json()).loaded).toBe(false);
    await t.app.request(`/v1/adapters/${a.id}`, { method: "DELETE" });
  });

  it("refuses a body whose sha256 differs from the header, and a wrong content id", async () => {
    const a = await upload("a");
    const other = await upload("b");
    const res = await put(a, { "x-weights-sha256": other.sha });
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.code).toBe("invalid_adapter");
    expect(error.message).toContain(a.sha);
    const wrongId = await put({ ...a, id: other.id });
    expect(wrongId.status).toBe(400);
    expect((await errorOf(wrongId)).param).toBe("adapterId");
    const badHeader = await put(a, { "x-adapter-config": "!!" });
    expect((await errorOf(badHeader)).param).toBe("x-adapter-config");
    expect(await resident()).toEqual(["pinned"]);
  });

  it("shows the edge's label but never resolves it: two tenants may both have a support@3", async () => {
    const [a, b] = [await upload("a"), await upload("b")];
    expect((await put(a, { "x-adapter-name": "support@3" })).status).toBe(201);
    expect((await put(b, { "x-adapter-name": "support@3" })).status).toBe(201);
    expect((await ask("support@3")).status).toBe(404);
    expect((await ask(b.id)).status).toBe(200);
    const list = ResidentAdapterListSchema.parse(await (await t.app.request("/v1/adapters")).json());
    expect(list.data.filter((x) => x.name === "support@3").map((x) => x.adapterId)).toEqual([a.id, b.id]);
    const models = RunnerModelListSchema.parse(await (await t.app.request("/v1/models")).json()).data.map(
      (m) => m.id,
    );
    expect(models).toContain(b.id);
    for (const u of [a, b])
      expect((await t.app.request(`/v1/adapters/${u.id}`, { method: "DELETE" })).status).toBe(200);
  });

  it("answers model_not_found for a name that is neither the base nor resident", async () => {
    const res = await ask("support@3");
    expect(res.status).toBe(404);
    const error = await errorOf(res);
    expect(error).toMatchObject({ code: "model_not_found", type: "not_found_error", param: "model" });
    expect(error.message).toContain("support@3");
  });

  it("answers adapter_not_loaded (409, the edge's cue to upload) for a content id that is not resident", async () => {
    const a = await upload("a");
    const res = await ask(a.id);
    expect(res.status).toBe(409);
    expect(await errorOf(res)).toMatchObject({ code: "adapter_not_loaded", param: "model" });
  });

  it("loads and unloads by name and path like vLLM", async () => {
    const res = await t.post("/v1/load_lora_adapter", { lora_name: "sql", lora_path: paths.a });
    expect(res.status).toBe(201);
    expect((await ask("sql")).status).toBe(200);
    const missing = await t.post("/v1/load_lora_adapter", {
      lora_name: "x",
      lora_path: join(dirs.root, "nowhere"),
    });
    expect(missing.status).toBe(400);
    expect((await errorOf(missing)).message).toContain("nowhere");
    expect((await t.post("/v1/unload_lora_adapter", { lora_name: "sql" })).status).toBe(200);
    expect((await ask("sql")).status).toBe(404);
    expect((await t.post("/v1/unload_lora_adapter", { lora_name: "sql" })).status).toBe(404);
  });

  it("evicts the least recently used unpinned adapter from its slot, never the pinned one, and keeps it in host memory", async () => {
    for (const name of ["a", "b"])
      await t.post("/v1/load_lora_adapter", { lora_name: name, lora_path: paths[name] });
    expect(await resident()).toEqual(["pinned", "a", "b"]);
    // touch a, so b is now the least recently used
    await new Promise((r) => setTimeout(r, 5));
    expect((await ask("a")).status).toBe(200);
    const before = t.runner.deps.metrics.adapterEvictions.get();
    expect((await t.post("/v1/load_lora_adapter", { lora_name: "c", lora_path: paths.c })).status).toBe(201);
    expect((await resident()).sort()).toEqual(["a", "c", "pinned"]);
    expect(t.runner.deps.metrics.adapterEvictions.get()).toBe(before + 1);
    expect((await ask("pinned")).status).toBe(200);
    const models = RunnerModelListSchema.parse(await (await t.app.request("/v1/models")).json()).data.map(
      (m) => m.id,
    );
    // b left its slot, not the runner: it is served again from host memory, with no new load
    expect(models.sort()).toEqual(["a", "b", "c", "demo-llama", "pinned"]);
    const loads = t.runner.deps.metrics.adapterLoads.get();
    expect((await ask("b")).status).toBe(200);
    expect(t.runner.deps.metrics.adapterLoads.get()).toBe(loads);
    expect(await resident()).toContain("b");
  });

  it("keeps an adapter that a request holds: unloading it refuses until the request lets go", async () => {
    const lease = t.runner.deps.adapters.acquire("a");
    try {
      const refused = await t.post("/v1/unload_lora_adapter", { lora_name: "a" });
      expect(refused.status).toBe(409);
      expect((await errorOf(refused)).message).toContain("in use by 1 request");
      expect((await ask("a")).status).toBe(200);
    } finally {
      lease.release();
    }
    expect((await t.post("/v1/unload_lora_adapter", { lora_name: "a" })).status).toBe(200);
    expect((await ask("a")).status).toBe(404);
  });
});
