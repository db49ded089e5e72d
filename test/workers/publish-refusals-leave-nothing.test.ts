// Every refusal names its reason, and a refused publish leaves no rows, no blob and no staged upload.
import { describe, expect, it } from "vitest";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { readSafetensors, type TensorToWrite, writeSafetensors } from "../../src/safetensors.ts";
import { demoSpecConfig } from "../helpers/peft-files.ts";
import {
  adapterFiles,
  call,
  demoBase,
  type ErrorBody,
  footprint,
  json,
  newTenant,
  publishRaw,
  upload,
} from "./support/edge.ts";

type Files = { config: Record<string, unknown>; safetensors: Uint8Array };

/** Re-writes a file with extra tensors, keeping the ones it has. */
function withExtraTensors(files: Files, extra: Record<string, TensorToWrite>): Files {
  const parsed = readSafetensors(files.safetensors);
  const tensors: Record<string, TensorToWrite> = { ...extra };
  for (const t of parsed.tensors) {
    tensors[t.name] = {
      dtype: t.dtype,
      shape: t.shape,
      data: parsed.bytes.slice(parsed.dataOffset + t.begin, parsed.dataOffset + t.end),
    };
  }
  return { config: files.config, safetensors: writeSafetensors(tensors) };
}

async function expectRefusal(
  files: Files,
  extra: Record<string, unknown>,
  code: string,
  ...fragments: string[]
) {
  const { tenant, key } = await newTenant();
  await json(await publishRaw(key, "ok", adapterFiles(await demoBase(), { seed: 99 })), 201);
  const before = await footprint(tenant);
  const res = await publishRaw(key, "ok", files, extra);
  const body = await json<ErrorBody>(res, code === "conflict" ? 409 : 400);
  expect(body.error.code).toBe(code);
  const text = [body.error.message, ...(body.error.details ?? [])].join("\n");
  for (const fragment of fragments) expect(text).toContain(fragment);
  expect(await footprint(tenant)).toEqual(before);
  return body;
}

describe("publish refusals", () => {
  it("refuses DoRA", async () => {
    const files = adapterFiles(await demoBase(), { config: { use_dora: true } });
    await expectRefusal(files, {}, "invalid_adapter", "use_dora");
  });

  it("refuses modules_to_save", async () => {
    const files = adapterFiles(await demoBase(), { config: { modules_to_save: ["lm_head"] } });
    await expectRefusal(files, {}, "invalid_adapter", "modules_to_save");
  });

  it("refuses bias other than none, and lora_bias", async () => {
    const spec = await demoBase();
    await expectRefusal(adapterFiles(spec, { config: { bias: "all" } }), {}, "invalid_adapter", "bias");
    await expectRefusal(
      adapterFiles(spec, { config: { lora_bias: true } }),
      {},
      "invalid_adapter",
      "lora_bias",
    );
  });

  it("refuses inits that change the base weights (PiSSA, OLoRA, LoftQ)", async () => {
    const spec = await demoBase();
    for (const init of ["pissa", "olora", "loftq"]) {
      await expectRefusal(
        adapterFiles(spec, { config: { init_lora_weights: init } }),
        {},
        "invalid_adapter",
        "init_lora_weights",
      );
    }
  });

  it("refuses keys that match no module of the base, reporting every problem at once", async () => {
    const spec = await demoBase();
    const files = withExtraTensors(adapterFiles(spec), {
      "base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight": {
        dtype: "F32",
        shape: [8, 64],
        data: new Uint8Array(8 * 64 * 4),
      },
      "base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight": {
        dtype: "F32",
        shape: [64, 8],
        data: new Uint8Array(64 * 8 * 4),
      },
    });
    const body = await expectRefusal(
      files,
      {},
      "invalid_adapter",
      "model.layers.9.self_attn.q_proj",
      "matches no module",
    );
    expect(body.error.details).toHaveLength(2);
  });

  it("refuses shapes that do not fit the base, naming the module, the size and the base", async () => {
    const other = await baseModelSpecFromConfig("demo-llama", {
      ...demoSpecConfig(),
      hidden_size: 32,
      head_dim: 8,
    });
    const files = adapterFiles(other);
    await expectRefusal(
      files,
      {},
      "invalid_adapter",
      "model.layers.0.self_attn.q_proj",
      "in_features 32",
      'base "demo-llama" has 64',
    );
  });

  it("refuses a rank above MAX_LORA_RANK", async () => {
    const files = adapterFiles(await demoBase(), { r: 300, targets: ["q_proj"] });
    await expectRefusal(files, {}, "invalid_adapter", "rank 300 must be <= 64");
  });

  it("refuses an unknown base model", async () => {
    const files = adapterFiles(await demoBase());
    await expectRefusal(files, { base: "no-such-base" }, "invalid_adapter", "no-such-base", "not registered");
  });

  it("refuses another base for an existing adapter name", async () => {
    const other = "demo-llama-b";
    await call("PUT", `/admin/base-models/${other}`, { token: "test-admin-token", json: demoSpecConfig() });
    const files = adapterFiles(await demoBase());
    await expectRefusal(files, { base: other }, "conflict", 'is for base model "demo-llama"');
  });

  it("refuses a truncated safetensors file and a pickle file", async () => {
    const good = adapterFiles(await demoBase());
    const truncated = {
      config: good.config,
      safetensors: good.safetensors.slice(0, good.safetensors.length - 10),
    };
    await expectRefusal(truncated, {}, "invalid_safetensors", "truncated");
    const pickle = {
      config: good.config,
      safetensors: new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]),
    };
    await expectRefusal(pickle, {}, "invalid_safetensors", "header size");
  });

  it("refuses an upload whose bytes do not match the declared sha256, storing nothing", async () => {
    const { tenant, key } = await newTenant();
    const before = await footprint(tenant);
    const files = adapterFiles(await demoBase());
    const res = await upload(key, files.safetensors, "0".repeat(64));
    const body = await json<ErrorBody>(res, 400);
    expect(body.error.message).toContain("x-content-sha256");
    expect(await footprint(tenant)).toEqual(before);
  });

  it("consumes an upload: a second publish of the same upload id is refused", async () => {
    const { key } = await newTenant();
    const files = adapterFiles(await demoBase());
    const staged = await json<{ upload: string }>(await upload(key, files.safetensors), 201);
    const publishIt = () =>
      call("POST", "/admin/adapters/once/versions", {
        token: key,
        json: { upload: staged.upload, base: "demo-llama", config: files.config },
      });
    await json(await publishIt(), 201);
    expect((await json<ErrorBody>(await publishIt(), 404)).error.param).toBe("upload");
  });
});
