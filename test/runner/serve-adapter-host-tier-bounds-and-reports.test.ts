// The host-memory tier behind the slots: bounded by --max-cpu-loras and --adapter-cache-bytes, LRU with the
// pinned (static) adapters never evicted, a refused load changing nothing, a slot refilled from it with the
// same output as before, and its contents reported in /v1/adapters, /health and /metrics.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../gpu-runner/serving/config.ts";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { ResidentAdapterListSchema, RunnerHealthSchema } from "../../src/contracts/runner.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
const paths: Record<string, string> = {};

beforeAll(async () => {
  dirs = await makeDemoDirs();
  for (const [k, name] of ["p", "a", "b", "c", "d"].entries())
    paths[name] = await dirs.adapter(name, { seed: 40 + k, rank: 8 });
});
afterAll(async () => {
  await dirs?.cleanup();
});

const load = (t: TestRunner, name: string) =>
  t.post("/v1/load_lora_adapter", { lora_name: name, lora_path: paths[name] });

async function text(t: TestRunner, model: string): Promise<string> {
  const res = await t.post("/v1/completions", { model, prompt: "Once upon", max_tokens: 8, temperature: 0 });
  expect(res.status).toBe(200);
  return CompletionSchema.parse(await res.json()).choices[0]?.text ?? "";
}

async function listing(t: TestRunner) {
  const list = ResidentAdapterListSchema.parse(await (await t.app.request("/v1/adapters")).json());
  const host = list.host;
  if (host === undefined) throw new Error("/v1/adapters has no host tier");
  const name = (a: { names?: string[] | undefined; adapterId: string }) => a.names?.[0] ?? a.adapterId;
  return { list, host, gpu: list.data.map(name).sort(), hostNames: host.data.map(name).sort() };
}

describe("host tier", () => {
  it("holds up to --max-cpu-loras, evicts the least recently used unpinned adapter, and never the pinned one", async () => {
    const t = await startTestRunner(dirs.model, {
      loras: [{ name: "p", path: paths.p as string }],
      maxLoras: 2,
      tiers: { maxCpuLoras: 3 },
    });
    try {
      expect((await load(t, "a")).status).toBe(201);
      const fromSlot = await text(t, "a");
      const aId = t.runner.deps.adapters.find("a")?.adapterId as string;
      expect((await load(t, "b")).status).toBe(201);
      // two slots: p (pinned) and b, which took a's idle slot; a is in host memory only
      let now = await listing(t);
      expect(now.gpu).toEqual(["b", "p"]);
      expect(now.hostNames).toEqual(["a", "b", "p"]);
      expect(now.host.data.find((x) => x.names?.[0] === "a")?.slot).toBeNull();
      // a is served from host memory (refilled into a slot) with the output it gave from its slot before
      const loads = t.runner.deps.metrics.adapterLoads.get();
      expect(await text(t, "a")).toBe(fromSlot);
      expect(t.runner.deps.metrics.adapterLoads.get()).toBe(loads);
      // a third unpinned adapter exceeds --max-cpu-loras 3: b (least recently used, unpinned) leaves
      await text(t, "p");
      expect((await load(t, "c")).status).toBe(201);
      now = await listing(t);
      expect(now.hostNames).toEqual(["a", "c", "p"]);
      expect((await t.post("/v1/completions", { model: "b", prompt: "x", max_tokens: 1 })).status).toBe(404);
      for (const name of ["d", "b", "d"]) expect([200, 201]).toContain((await load(t, name)).status);
      now = await listing(t);
      expect(now.hostNames).toContain("p");
      expect(now.host.data.find((x) => x.names?.[0] === "p")?.pinned).toBe(true);
      // an adapter evicted from both tiers answers by content id as the edge expects: 409, load it again
      expect(now.hostNames).not.toContain("a");
      const gone = await t.post("/v1/completions", { model: aId, prompt: "x", max_tokens: 1 });
      expect(gone.status).toBe(409);
      expect((await errorOf(gone)).code).toBe("adapter_not_loaded");
      const metrics = await (await t.app.request("/metrics")).text();
      expect(metrics).toMatch(/^runner_adapter_host_evictions_total [1-9]/m);
      expect(metrics).toContain("runner_host_adapter_limit 3");
    } finally {
      await t.close();
    }
  });

  it("refuses a load with 503 when every adapter in it is pinned or in use, and changes nothing", async () => {
    const t = await startTestRunner(dirs.model, { maxLoras: 1, tiers: { maxCpuLoras: 2 } });
    try {
      for (const name of ["a", "b"]) expect((await load(t, name)).status).toBe(201);
      const before = await listing(t);
      const leases = ["a", "b"].map((name) => t.runner.deps.adapters.acquire(name));
      try {
        const refused = await load(t, "c");
        expect(refused.status).toBe(503);
        const error = await errorOf(refused);
        expect(error.code).toBe("unavailable");
        expect(error.message).toContain("--max-cpu-loras 2");
        expect((await listing(t)).hostNames).toEqual(before.hostNames);
      } finally {
        for (const lease of leases) lease.release();
      }
      expect((await load(t, "c")).status).toBe(201);
    } finally {
      await t.close();
    }
  });

  it("bounds the decoded bytes by --adapter-cache-bytes: too large is 413, a full budget evicts", async () => {
    const probe = await startTestRunner(dirs.model, { maxLoras: 1 });
    let bytes: number;
    try {
      expect((await load(probe, "a")).status).toBe(201);
      bytes = (await listing(probe)).host.usedBytes;
      expect(bytes).toBeGreaterThan(0);
    } finally {
      await probe.close();
    }
    const tiny = await startTestRunner(dirs.model, { maxLoras: 1, tiers: { adapterCacheBytes: bytes - 1 } });
    try {
      const refused = await load(tiny, "a");
      expect(refused.status).toBe(413);
      expect((await errorOf(refused)).message).toContain(`--adapter-cache-bytes is ${bytes - 1}`);
      expect((await listing(tiny)).host.data).toEqual([]);
    } finally {
      await tiny.close();
    }
    // room for two: the third evicts the least recently used
    const t = await startTestRunner(dirs.model, { maxLoras: 2, tiers: { adapterCacheBytes: 2 * bytes } });
    try {
      for (const name of ["a", "b", "c"]) expect((await load(t, name)).status).toBe(201);
      const now = await listing(t);
      expect(now.hostNames).toEqual(["b", "c"]);
      expect(now.host).toMatchObject({ maxAdapters: null, budgetBytes: 2 * bytes, usedBytes: 2 * bytes });
    } finally {
      await t.close();
    }
  });

  it("reports both tiers in /v1/adapters, /health and /metrics", async () => {
    const t = await startTestRunner(dirs.model, {
      loras: [{ name: "p", path: paths.p as string }],
      maxLoras: 1,
      tiers: { maxCpuLoras: 4, adapterCacheBytes: 1 << 24 },
    });
    try {
      expect((await load(t, "a")).status).toBe(201);
      const { list, host } = await listing(t);
      // one slot, held by the pinned adapter; a waits in host memory
      expect(list.data.map((x) => x.names)).toEqual([["p"]]);
      expect(host).toMatchObject({ maxAdapters: 4, budgetBytes: 1 << 24 });
      const a = host.data.find((x) => x.names?.[0] === "a");
      expect(a).toMatchObject({ slot: null, pinned: false, inFlight: 0 });
      expect(host.usedBytes).toBe(host.data.reduce((s, x) => s + x.hostBytes, 0));
      const health = RunnerHealthSchema.parse(await (await t.app.request("/health")).json());
      expect(health).toMatchObject({ residentAdapters: 1, hostAdapters: 2 });
      const metrics = await (await t.app.request("/metrics")).text();
      expect(metrics).toContain("runner_host_adapters 2");
      expect(metrics).toContain(`runner_host_adapter_bytes ${host.usedBytes}`);
      expect(metrics).toContain(`runner_host_adapter_budget_bytes ${1 << 24}`);
      expect(metrics).toContain(
        `runner_adapter_tier_bytes{adapter_id="${a?.adapterId}",tier="host",slot="",pinned="false"} ${a?.hostBytes}`,
      );
      expect(metrics).toMatch(
        /runner_adapter_tier_bytes\{adapter_id="[0-9a-f]{64}",tier="gpu",slot="1",pinned="true"\}/,
      );
    } finally {
      await t.close();
    }
  });
});

describe("host tier flags", () => {
  const base = ["--model", "/models/x"];
  it("takes --max-cpu-loras and --adapter-cache-bytes, with a 2 GiB default budget and no count bound", () => {
    expect(parseConfig(base, {})).toMatchObject({ maxCpuLoras: null, adapterCacheBytes: 2 ** 31 });
    expect(
      parseConfig(
        [...base, "--max-loras", "4", "--max-cpu-loras", "1000", "--adapter-cache-bytes", "1024"],
        {},
      ),
    ).toMatchObject({ maxLoras: 4, maxCpuLoras: 1000, adapterCacheBytes: 1024 });
  });

  it("refuses --max-cpu-loras below --max-loras, as vLLM does, and budgets that are not byte counts", () => {
    expect(() => parseConfig([...base, "--max-loras", "8", "--max-cpu-loras", "4"], {})).toThrow(
      '--max-cpu-loras must be >= --max-loras (8); got "4"',
    );
    for (const bad of ["0", "2GB", "-1", "1.5"]) {
      expect(() => parseConfig([...base, "--adapter-cache-bytes", bad], {})).toThrow(
        `--adapter-cache-bytes must be an integer in 1..${Number.MAX_SAFE_INTEGER}; got "${bad}"`,
      );
    }
  });
});
