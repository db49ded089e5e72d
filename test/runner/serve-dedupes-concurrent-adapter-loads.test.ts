// Edge isolates share nothing, so several may PUT the same cold adapter at once: the runner loads it once,
// and answers a PUT of resident content without reading (or re-checking) the body again.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterId, validateAdapter } from "../../src/adapters/validate.ts";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { AdapterLoadResponseSchema, encodeAdapterConfigHeader } from "../../src/contracts/runner.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { type DemoDirs, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;

async function upload(dir: string) {
  const config = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
  const weights = new Uint8Array(await readFile(join(dir, "adapter_model.safetensors")));
  const spec = await baseModelSpecFromConfig(
    "demo-llama",
    JSON.parse(await readFile(join(dirs.model, "config.json"), "utf8")),
  );
  const sha = await sha256Hex(weights);
  const id = await adapterId(sha, validateAdapter({ config, header: readSafetensors(weights), spec }));
  return { id, sha, config, weights };
}

type Upload = Awaited<ReturnType<typeof upload>>;

const put = (u: Upload, body: Uint8Array | ReadableStream<Uint8Array> = u.weights) =>
  t.app.request(`/v1/adapters/${u.id}`, {
    method: "PUT",
    headers: { "x-adapter-config": encodeAdapterConfigHeader(u.config), "x-weights-sha256": u.sha },
    body,
    duplex: "half",
  } as RequestInit);

/** A body that notes whether anyone read it. */
function watchedBody(bytes: Uint8Array, reads: { count: number }): ReadableStream<Uint8Array> {
  let read = false;
  return new ReadableStream(
    {
      pull(controller) {
        if (!read) reads.count++;
        read = true;
        controller.enqueue(bytes);
        controller.close();
      },
    },
    // no read-ahead: pull runs only when someone reads
    { highWaterMark: 0 },
  );
}

async function loadsCounted(): Promise<number> {
  const text = await (await t.app.request("/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith("runner_adapter_loads_total"));
  // A counter that was never incremented has no sample line.
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

beforeAll(async () => {
  dirs = await makeDemoDirs();
  t = await startTestRunner(dirs.model, { maxLoras: 2 });
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

describe("concurrent loads of one adapter", () => {
  it("loads once under 10 concurrent PUTs, reading one body: one 201, nine 200 with loaded false", async () => {
    const u = await upload(await dirs.adapter("hot", { seed: 7 }));
    const before = await loadsCounted();
    const reads = { count: 0 };
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => put(u, watchedBody(u.weights, reads))),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    for (const r of answers) {
      const body = AdapterLoadResponseSchema.parse(await r.json());
      expect(body.adapter.adapterId).toBe(u.id);
      expect(body.loaded).toBe(r.status === 201);
    }
    expect((await loadsCounted()) - before).toBe(1);
    expect(reads.count).toBe(1);
  });

  it("answers a PUT of resident content from what it holds, and a PUT of new content checks its body", async () => {
    const u = await upload(await dirs.adapter("warm", { seed: 8 }));
    expect((await put(u)).status).toBe(201);
    const truncated = u.weights.subarray(0, 16);
    // The content id already names these bytes: the body of a second PUT is not needed, so not read.
    expect((await put(u, truncated)).status).toBe(200);
    await t.app.request(`/v1/adapters/${u.id}`, { method: "DELETE" });
    const refused = await put(u, truncated);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain("sha256");
  });
});
