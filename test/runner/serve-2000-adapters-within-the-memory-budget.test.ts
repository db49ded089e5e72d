// Thousands of adapters through one runner under --adapter-cache-bytes: 2,000 distinct adapters uploaded as
// the edge uploads them (PUT /v1/adapters/{id}) keep the host tier within its byte budget and count bound at
// every point, the process's resident memory (/metrics process_resident_memory_bytes) grows by no more than
// the budget and a fixed allowance for the heap, far below what holding them all would take, and an adapter
// evicted long ago is served again after the 409 and its upload.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { adapterId, type ValidatedAdapter, validateAdapter } from "../../src/adapters/validate.ts";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { encodeAdapterConfigHeader } from "../../src/contracts/runner.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { parsePrometheusText } from "../helpers/prometheus-text.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

const ADAPTERS = 2000;
const BUDGET = 64 * 1024 ** 2;
const MAX_CPU_LORAS = 1500;
/** Heap and allocator slack beyond the budget: garbage not yet collected, code, caches. */
const ALLOWANCE = 160 * 1024 ** 2;

let dirs: DemoDirs;
let family: { config: unknown; bytes: Uint8Array; dataOffset: number; validated: ValidatedAdapter };

beforeAll(async () => {
  dirs = await makeDemoDirs();
  const dir = await dirs.adapter("family", {
    seed: 3,
    rank: 16,
    targetModules: ["q_proj", "k_proj", "v_proj", "o_proj"],
  });
  const config = JSON.parse(await readFile(join(dir, PEFT_CONFIG_FILE), "utf8"));
  const bytes = new Uint8Array(await readFile(join(dir, PEFT_WEIGHTS_FILE)));
  const header = readSafetensors(bytes);
  const spec = await baseModelSpecFromConfig(
    "demo",
    JSON.parse(await readFile(join(dirs.model, "config.json"), "utf8")),
  );
  family = {
    config,
    bytes,
    dataOffset: header.dataOffset,
    validated: validateAdapter({ config, header, spec }),
  };
});
afterAll(async () => {
  await dirs?.cleanup();
});

/** Adapter k: the family's file with its first F32 value set from k, so each k is its own content id. */
async function variant(k: number) {
  const weights = family.bytes.slice();
  new DataView(weights.buffer).setFloat32(family.dataOffset, (k + 1) * 1e-6, true);
  const sha = await sha256Hex(weights);
  return { id: await adapterId(sha, family.validated), sha, weights };
}

async function put(t: TestRunner, k: number): Promise<string> {
  const v = await variant(k);
  const res = await t.app.request(`/v1/adapters/${v.id}`, {
    method: "PUT",
    headers: {
      "x-adapter-config": encodeAdapterConfigHeader(family.config),
      "x-weights-sha256": v.sha,
    },
    body: v.weights,
  });
  expect(res.status, await res.clone().text()).toBe(201);
  return v.id;
}

async function scrape(t: TestRunner) {
  const families = parsePrometheusText(await (await t.app.request("/metrics")).text());
  const metricValue = (name: string) => {
    const family = families.get(name);
    // a counter has no sample until its first increment
    const value = family?.type === "counter" ? (family.samples[0]?.value ?? 0) : family?.samples[0]?.value;
    if (value === undefined) throw new Error(`/metrics has no ${name}`);
    return value;
  };
  return {
    rss: metricValue("process_resident_memory_bytes"),
    hostBytes: metricValue("runner_host_adapter_bytes"),
    hostAdapters: metricValue("runner_host_adapters"),
    evictions: metricValue("runner_adapter_host_evictions_total"),
  };
}

describe("2,000 adapters under the host-memory budget", () => {
  it("keep the host tier and the process's resident memory within the budget the flags set", async () => {
    const t = await startTestRunner(dirs.model, {
      maxLoras: 4,
      maxLoraRank: 16,
      tiers: { maxCpuLoras: MAX_CPU_LORAS, adapterCacheBytes: BUDGET },
    });
    try {
      const firstId = await put(t, 0);
      const perAdapter = t.runner.deps.adapters.host().data[0]?.hostBytes as number;
      const fits = Math.floor(BUDGET / perAdapter);
      // the budget, not the count bound, is what binds, and holding every adapter would take far more
      expect(fits).toBeGreaterThanOrEqual(20);
      expect(fits).toBeLessThan(MAX_CPU_LORAS);
      expect(ADAPTERS * perAdapter).toBeGreaterThan(3 * (BUDGET + ALLOWANCE));
      for (let k = 1; k < 50; k++) await put(t, k);
      const baseline = (await scrape(t)).rss;
      let peakRss = baseline;
      for (let k = 50; k < ADAPTERS; k++) {
        await put(t, k);
        const host = t.runner.deps.adapters.host();
        expect(host.usedBytes).toBeLessThanOrEqual(BUDGET);
        expect(host.data.length).toBeLessThanOrEqual(MAX_CPU_LORAS);
        if (k % 50 === 0) {
          const m = await scrape(t);
          expect(m.hostBytes).toBeLessThanOrEqual(BUDGET);
          peakRss = Math.max(peakRss, m.rss);
        }
      }
      const end = await scrape(t);
      peakRss = Math.max(peakRss, end.rss);
      expect(end.hostAdapters).toBe(fits);
      expect(end.evictions).toBe(ADAPTERS - fits);
      expect(peakRss - baseline, `RSS growth over ${baseline} bytes`).toBeLessThanOrEqual(BUDGET + ALLOWANCE);

      // the newest is served from memory; the first, evicted long ago, answers 409 until uploaded again
      const ask = (model: string) =>
        t.post("/v1/completions", { model, prompt: "Once upon", max_tokens: 4, temperature: 0 });
      const newest = await ask((await variant(ADAPTERS - 1)).id);
      expect(newest.status).toBe(200);
      expect(CompletionSchema.parse(await newest.json()).choices[0]?.text.length).toBeGreaterThan(0);
      const gone = await ask(firstId);
      expect(gone.status).toBe(409);
      expect((await errorOf(gone)).code).toBe("adapter_not_loaded");
      expect(await put(t, 0)).toBe(firstId);
      expect((await ask(firstId)).status).toBe(200);
      expect(t.runner.deps.adapters.host().usedBytes).toBeLessThanOrEqual(BUDGET);
    } finally {
      await t.close();
    }
  }, 240_000);
});
