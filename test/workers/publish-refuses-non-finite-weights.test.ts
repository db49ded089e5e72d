// A NaN or ±Inf anywhere in an adapter's weights turns every output that uses it into NaN, so the edge scans
// the values while it copies an upload to its blob and refuses the publish (400 invalid_adapter, naming the
// tensor and the first bad index), storing nothing: no rows, no blob, no staged upload.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { demoSpecConfig } from "../helpers/peft-files.ts";
import {
  ADMIN,
  adapterFiles,
  blobBytes,
  call,
  demoBase,
  type ErrorBody,
  footprint,
  json,
  newTenant,
  publishRaw,
} from "./support/edge.ts";

type Files = { config: Record<string, unknown>; safetensors: Uint8Array };
type Bad = "NaN" | "Infinity" | "-Infinity";
type FloatDtype = "F32" | "F16" | "BF16";

/** The little-endian bit pattern of each bad value in each dtype. */
const PATTERNS: Record<FloatDtype, Record<Bad, number[]>> = {
  F32: {
    NaN: [0x00, 0x00, 0xc0, 0x7f],
    Infinity: [0x00, 0x00, 0x80, 0x7f],
    "-Infinity": [0x00, 0x00, 0x80, 0xff],
  },
  F16: { NaN: [0x00, 0x7e], Infinity: [0x00, 0x7c], "-Infinity": [0x00, 0xfc] },
  BF16: { NaN: [0xc0, 0x7f], Infinity: [0x80, 0x7f], "-Infinity": [0x80, 0xff] },
};

/** A copy of the file with element `index` of tensor `which` (by position in the file) set to `bad`. */
function poisoned(
  files: Files,
  which: number | "last",
  index: number | "middle" | "last",
  bad: Bad,
): { files: Files; tensor: string; index: number } {
  const file = readSafetensors(files.safetensors);
  const ordered = [...file.tensors].sort((a, b) => a.begin - b.begin);
  const tensor = ordered[which === "last" ? ordered.length - 1 : which];
  if (tensor === undefined) throw new Error(`no tensor ${which}`);
  const pattern = PATTERNS[tensor.dtype as FloatDtype][bad];
  const elements = (tensor.end - tensor.begin) / pattern.length;
  const at = index === "last" ? elements - 1 : index === "middle" ? Math.floor(elements / 2) + 1 : index;
  const bytes = files.safetensors.slice();
  bytes.set(pattern, file.dataOffset + tensor.begin + at * pattern.length);
  return { files: { config: files.config, safetensors: bytes }, tensor: tensor.name, index: at };
}

async function expectRefused(
  key: string,
  tenant: string,
  files: Files,
  ...fragments: string[]
): Promise<ErrorBody> {
  const before = await footprint(tenant);
  const body = await json<ErrorBody>(await publishRaw(key, "weights", files), 400);
  expect(body.error.code).toBe("invalid_adapter");
  const text = [body.error.message, ...(body.error.details ?? [])].join("\n");
  for (const fragment of fragments) expect(text).toContain(fragment);
  expect(await footprint(tenant)).toEqual(before);
  const blob = await env.ADAPTERS.head(`blobs/sha256/${await sha256Hex(files.safetensors)}`);
  expect(blob).toBeNull();
  return body;
}

describe("publishing weights that are not all finite", () => {
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    for (const bad of ["NaN", "Infinity", "-Infinity"] as const) {
      it(`refuses ${bad} in ${dtype} weights, naming the tensor and the index`, async () => {
        const { tenant, key } = await newTenant();
        const good = adapterFiles(await demoBase(), { seed: 3, dtype });
        const { files, tensor, index } = poisoned(good, 1, 17, bad);
        await expectRefused(
          key,
          tenant,
          files,
          `tensor "${tensor}"`,
          `got ${bad} at index ${index}`,
          "finite",
        );
      });
    }
  }

  it("reports every tensor that holds a bad value, each with its first bad index", async () => {
    const { tenant, key } = await newTenant();
    const good = adapterFiles(await demoBase(), { seed: 4 });
    const first = poisoned(good, 0, 0, "NaN");
    const second = poisoned(poisoned(first.files, 2, 5, "Infinity").files, 2, 9, "NaN");
    const body = await expectRefused(key, tenant, second.files);
    expect(body.error.details).toHaveLength(2);
    expect(body.error.details?.[0]).toContain(
      `tensor "${first.tensor}" must hold only finite values; got NaN at index 0`,
    );
    expect(body.error.details?.[1]).toContain(
      `tensor "${second.tensor}" must hold only finite values; got Infinity at index 5`,
    );
  });

  it("refuses a bad value in the file's very last element", async () => {
    const { tenant, key } = await newTenant();
    const good = adapterFiles(await demoBase(), { seed: 5, dtype: "F16" });
    const { files, tensor, index } = poisoned(good, "last", "last", "-Infinity");
    await expectRefused(key, tenant, files, `tensor "${tensor}"`, `at index ${index}`);
  });

  it("scans a file that arrives in many chunks, and passes a finite one through byte for byte", async () => {
    const wide = {
      ...demoSpecConfig(),
      hidden_size: 1024,
      intermediate_size: 2048,
      num_hidden_layers: 3,
      num_attention_heads: 16,
      num_key_value_heads: 4,
      head_dim: 64,
    };
    const res = await fetchBase("wide-llama", wide);
    expect([200, 201]).toContain(res);
    const spec = await baseModelSpecFromConfig("wide-llama", wide);
    const { tenant, key } = await newTenant();
    // ~12 MiB of F32: far more than one chunk of an R2 body.
    const good = adapterFiles(spec, { seed: 6, targets: "all-linear", r: 64 });
    const { files, tensor, index } = poisoned(good, "last", "middle", "NaN");
    const before = await footprint(tenant);
    const refused = await json<ErrorBody>(await publishRaw(key, "wide", files, { base: "wide-llama" }), 400);
    expect(refused.error.message).toContain(
      `tensor "${tensor}" must hold only finite values; got NaN at index ${index}`,
    );
    expect(await footprint(tenant)).toEqual(before);

    const published = await json<{ weightsSha256: string }>(
      await publishRaw(key, "wide", good, { base: "wide-llama" }),
      201,
    );
    expect(published.weightsSha256).toBe(await sha256Hex(good.safetensors));
    expect(await sha256Hex(await blobBytes(published.weightsSha256))).toBe(published.weightsSha256);
  });

  it("refuses bad weights even when a blob with their digest is already stored", async () => {
    const { tenant, key } = await newTenant();
    const good = adapterFiles(await demoBase(), { seed: 8 });
    const { files, tensor } = poisoned(good, 1, 3, "NaN");
    const sha256 = await sha256Hex(files.safetensors);
    // A blob stored before the edge checked values: publishing its bytes again must not make a version.
    await env.ADAPTERS.put(`blobs/sha256/${sha256}`, files.safetensors);
    const before = await footprint(tenant);
    const body = await json<ErrorBody>(await publishRaw(key, "weights", files), 400);
    expect(body.error.code).toBe("invalid_adapter");
    expect(body.error.message).toContain(`tensor "${tensor}"`);
    expect(await footprint(tenant)).toEqual(before);
    await env.ADAPTERS.delete(`blobs/sha256/${sha256}`);
  });
});

async function fetchBase(id: string, config: Record<string, unknown>): Promise<number> {
  const res = await call("PUT", `/admin/base-models/${id}`, { token: ADMIN, json: config });
  await res.text();
  return res.status;
}
