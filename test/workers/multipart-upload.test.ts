// Uploads above the Worker's body limit go through R2 multipart driven by the client. R2 wants parts of at
// least 5 MiB but the last, so these adapters are built on a wider base than the demo one.
import { expect, it } from "vitest";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { demoSpecConfig } from "../helpers/peft-files.ts";
import {
  ADMIN,
  adapterFiles,
  blobBytes,
  call,
  type ErrorBody,
  footprint,
  json,
  newTenant,
} from "./support/edge.ts";

const PART = 5 * 1024 * 1024;
const WIDE = {
  ...demoSpecConfig(),
  hidden_size: 1024,
  intermediate_size: 2048,
  num_hidden_layers: 3,
  num_attention_heads: 16,
  num_key_value_heads: 4,
  head_dim: 64,
};

/** ~12 MiB of F32 LoRA weights (all-linear, r=64): three parts. */
async function wideBase() {
  const res = await call("PUT", "/admin/base-models/wide-llama", { token: ADMIN, json: WIDE });
  if (res.status !== 200 && res.status !== 201) throw new Error(await res.text());
  return await baseModelSpecFromConfig("wide-llama", WIDE);
}

async function multipart(key: string, bytes: Uint8Array, declared?: string) {
  const created = await json<{ upload: string; uploadId: string }>(
    await call("POST", "/admin/uploads/multipart", {
      token: key,
      json: { sha256: declared ?? (await sha256Hex(bytes)) },
    }),
    201,
  );
  const size = PART;
  const parts: { partNumber: number; etag: string }[] = [];
  for (let i = 0; i * size < bytes.length; i++) {
    const res = await call(
      "PUT",
      `/admin/uploads/${created.upload}/parts/${i + 1}?uploadId=${encodeURIComponent(created.uploadId)}`,
      {
        token: key,
        body: bytes.slice(i * size, (i + 1) * size),
      },
    );
    parts.push(await json<{ partNumber: number; etag: string }>(res, 200));
  }
  const done = await call("POST", `/admin/uploads/${created.upload}/complete`, {
    token: key,
    json: { uploadId: created.uploadId, parts },
  });
  return {
    created,
    done: await json<{ upload: string; sha256: string; sizeBytes: number }>(done, 201),
    parts,
  };
}

it("publishes an adapter uploaded in parts", async () => {
  const spec = await wideBase();
  const { key } = await newTenant();
  const files = adapterFiles(spec, { targets: "all-linear", r: 64 });
  const { done, parts } = await multipart(key, files.safetensors);
  expect(parts).toHaveLength(3);
  expect(done.sizeBytes).toBe(files.safetensors.length);
  const res = await call("POST", "/admin/adapters/big/versions", {
    token: key,
    json: { upload: done.upload, base: "wide-llama", config: files.config },
  });
  const published = await json<{ weightsSha256: string; version: number }>(res, 201);
  expect(published.weightsSha256).toBe(await sha256Hex(files.safetensors));
  // Compared by digest: a diff of two 12 MiB arrays would dwarf the isolate's memory if they differed.
  expect(await sha256Hex(await blobBytes(published.weightsSha256))).toBe(published.weightsSha256);
});

it("refuses at publish a multipart upload whose bytes do not match the declared sha256, leaving nothing", async () => {
  const spec = await wideBase();
  const { tenant, key } = await newTenant();
  const before = await footprint(tenant);
  const files = adapterFiles(spec, { seed: 42, targets: "all-linear", r: 64 });
  const { done } = await multipart(key, files.safetensors, "ab".repeat(32));
  const res = await call("POST", "/admin/adapters/liar/versions", {
    token: key,
    json: { upload: done.upload, base: "wide-llama", config: files.config },
  });
  const body = await json<ErrorBody>(res, 400);
  expect(body.error.message).toContain("must be the sha256 of the uploaded bytes");
  expect(await footprint(tenant)).toEqual(before);
});

it("keeps another tenant out of a multipart upload", async () => {
  const a = await newTenant();
  const b = await newTenant();
  const created = await json<{ upload: string; uploadId: string }>(
    await call("POST", "/admin/uploads/multipart", { token: a.key, json: { sha256: "cd".repeat(32) } }),
    201,
  );
  const res = await call(
    "PUT",
    `/admin/uploads/${created.upload}/parts/1?uploadId=${encodeURIComponent(created.uploadId)}`,
    {
      token: b.key,
      body: new Uint8Array(100),
    },
  );
  expect((await json<ErrorBody>(res, 404)).error.param).toBe("uploadId");
});
