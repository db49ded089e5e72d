// vLLM's POST /v1/load_lora_adapter reads a local folder: its weights file is held to --max-lora-file-bytes
// (by default the largest adapter this base could take) by its size on disk, so an oversize one is refused
// with 413 before it is read, and a path that is no regular file (a device, which reads forever) is refused
// with 400. A refused load leaves nothing loaded.
import { rm, stat, symlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResidentAdapterListSchema } from "../../src/contracts/runner.ts";
import { errorOf, makeDemoDirs, startTestRunner, type DemoDirs, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let adapter: string;
let size: number;
beforeAll(async () => {
  dirs = await makeDemoDirs();
  adapter = await dirs.adapter("sql", { seed: 1 });
  size = (await stat(join(adapter, "adapter_model.safetensors"))).size;
});
afterAll(async () => {
  await dirs?.cleanup();
});

async function loaded(t: TestRunner): Promise<number> {
  const list = ResidentAdapterListSchema.parse(await (await t.app.request("/v1/adapters")).json());
  return list.host?.data.length ?? 0;
}

describe("with --max-lora-file-bytes below the file's size", () => {
  let t: TestRunner;
  beforeAll(async () => {
    t = await startTestRunner(dirs.model, { bounds: { maxLoraFileBytes: 1024 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("refuses the load with 413 naming lora_path, the limit and the size, and loads nothing", async () => {
    const res = await t.post("/v1/load_lora_adapter", { lora_name: "sql", lora_path: adapter });
    expect(res.status).toBe(413);
    const error = await errorOf(res);
    expect(error.param).toBe("lora_path");
    expect(error.message).toBe(
      `lora_path: ${join(adapter, "adapter_model.safetensors")}: must be <= 1024 bytes; got ${size} (--max-lora-file-bytes)`,
    );
    expect(await loaded(t)).toBe(0);
  });
});

describe("with the default bound", () => {
  let t: TestRunner;
  beforeAll(async () => {
    t = await startTestRunner(dirs.model);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("refuses a weights file that is a device with 400 instead of reading it", async () => {
    const dir = await dirs.adapter("device", { seed: 2 });
    const weights = join(dir, "adapter_model.safetensors");
    await rm(weights);
    await symlink("/dev/zero", weights);
    const res = await t.post("/v1/load_lora_adapter", { lora_name: "device", lora_path: dir });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toBe(`${weights}: must be a regular file; got a device`);
    expect(await loaded(t)).toBe(0);
  });

  it("loads a folder within the bound", async () => {
    const res = await t.post("/v1/load_lora_adapter", { lora_name: "sql", lora_path: adapter });
    expect(res.status).toBe(201);
    expect(await loaded(t)).toBe(1);
  });
});
