// An adapter upload larger than any valid adapter for this runner is refused before it is read whole:
// by its content-length, or, for a chunked body, as soon as the bytes read pass the bound.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterId, validateAdapter } from "../../src/adapters/validate.ts";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { encodeAdapterConfigHeader, ResidentAdapterListSchema } from "../../src/contracts/runner.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

const RANK = 8;
const ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
let dirs: DemoDirs;
let t: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs(5);
  t = await startTestRunner(dirs.model, { maxLoraRank: RANK });
});

afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

const HEADERS = {
  "x-adapter-config": encodeAdapterConfigHeader({ peft_type: "LORA", r: RANK, lora_alpha: RANK }),
  "x-weights-sha256": "0".repeat(64),
};
const ID = "a".repeat(64);

async function resident(): Promise<number> {
  return ResidentAdapterListSchema.parse(await (await t.app.request("/v1/adapters")).json()).data.length;
}

describe("adapter uploads above the runner's bound", () => {
  it("bounds uploads by every linear at --max-lora-rank in F32, plus the header's room", () => {
    const bound = t.runner.deps.maxAdapterBytes;
    // demo model, per layer: q and o 256→256, k and v 256→128 (2 KV heads of 64), gate, up and down 256↔688
    const perLayer = (256 + 256) * 2 + (256 + 128) * 2 + (256 + 688) * 3;
    expect(bound).toBe(4 * perLayer * RANK * 4 + 1024 * 1024);
  });

  it("refuses by content-length with 413, naming the bound, and loads nothing", async () => {
    const before = await resident();
    const size = t.runner.deps.maxAdapterBytes + 1;
    const res = await t.app.request(`/v1/adapters/${ID}`, {
      method: "PUT",
      headers: { ...HEADERS, "content-length": String(size) },
      body: new Uint8Array(size),
    });
    expect(res.status).toBe(413);
    const error = await errorOf(res);
    expect(error.code).toBe("payload_too_large");
    expect(error.message).toContain(`<= ${t.runner.deps.maxAdapterBytes} bytes`);
    expect(error.message).toContain(`content-length ${size}`);
    expect(await resident()).toBe(before);
  });

  it("refuses a chunked body once it passes the bound", async () => {
    const chunk = new Uint8Array(1024 * 1024);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > t.runner.deps.maxAdapterBytes) return controller.close();
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    const res = await t.app.request(`/v1/adapters/${ID}`, {
      method: "PUT",
      headers: HEADERS,
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect((await errorOf(res)).message).toContain(`more than ${t.runner.deps.maxAdapterBytes} bytes`);
  });

  it("accepts the widest valid adapter: every linear at the slots' rank in F32", async () => {
    const dir = await dirs.adapter("widest", { seed: 9, rank: RANK, alpha: RANK, targetModules: ALL_LINEAR });
    const config = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
    const weights = new Uint8Array(await readFile(join(dir, "adapter_model.safetensors")));
    expect(weights.byteLength).toBeLessThanOrEqual(t.runner.deps.maxAdapterBytes);
    const spec = await baseModelSpecFromConfig(
      "demo-llama",
      JSON.parse(await readFile(join(dirs.model, "config.json"), "utf8")),
    );
    const sha = await sha256Hex(weights);
    const id = await adapterId(sha, validateAdapter({ config, header: readSafetensors(weights), spec }));
    const res = await t.app.request(`/v1/adapters/${id}`, {
      method: "PUT",
      headers: { "x-adapter-config": encodeAdapterConfigHeader(config), "x-weights-sha256": sha },
      body: weights,
    });
    expect(res.status).toBe(201);
  });
});
