import { describe, expect, it } from "vitest";
import { buildManifest } from "../../src/adapters/manifest.ts";
import { adapterId, validateAdapter } from "../../src/adapters/validate.ts";
import { CreateApiKeyRequestSchema } from "../../src/contracts/keys.ts";
import { AdapterManifestSchema } from "../../src/contracts/manifest.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { demoSpec, makePeftAdapter } from "../helpers/peft-files.ts";

describe("buildManifest", () => {
  it("fills the manifest from a validated adapter and parses back through the schema", async () => {
    const spec = await demoSpec();
    const built = makePeftAdapter({
      spec,
      targets: ["q_proj", "down_proj"],
      r: 8,
      alpha: 16,
      rankPattern: { down_proj: 4 },
      dtype: "BF16",
    });
    const adapter = validateAdapter({
      config: built.config,
      header: readSafetensors(built.safetensors),
      spec,
    });
    const weightsSha256 = await sha256Hex(built.safetensors);
    const manifest = await buildManifest({
      name: "support",
      version: 2,
      weightsSha256,
      sizeBytes: built.safetensors.byteLength,
      adapter,
      spec,
      peftConfig: built.config,
      createdBy: "key_1",
      createdAt: "2025-01-02T03:04:05.000Z",
      parentVersion: 1,
      metrics: { eval_loss: 1.25 },
    });
    expect(manifest).toMatchObject({
      adapterId: await adapterId(weightsSha256, adapter),
      dtype: "BF16",
      baseModel: { id: "demo-llama", fingerprint: spec.fingerprint },
      targetModules: ["down_proj", "q_proj"],
      maxRank: 8,
      rslora: false,
    });
    expect(manifest.modules).toContainEqual({
      module: "model.layers.1.mlp.down_proj",
      rank: 4,
      alpha: 16,
      scale: 4,
    });
    expect(AdapterManifestSchema.parse(JSON.parse(JSON.stringify(manifest)))).toEqual(manifest);
    expect(AdapterManifestSchema.safeParse({ ...manifest, version: 0 }).success).toBe(false);
    expect(AdapterManifestSchema.safeParse({ ...manifest, name: "Bad Name" }).success).toBe(false);
  });
});

describe("CreateApiKeyRequestSchema", () => {
  it("takes known scopes once each", () => {
    const ok = { tenant: "acme", name: "ci", scopes: ["infer", "publish"] };
    expect(CreateApiKeyRequestSchema.safeParse(ok).success).toBe(true);
    expect(CreateApiKeyRequestSchema.safeParse({ ...ok, scopes: ["root"] }).success).toBe(false);
    expect(CreateApiKeyRequestSchema.safeParse({ ...ok, scopes: ["infer", "infer"] }).success).toBe(false);
    expect(CreateApiKeyRequestSchema.safeParse({ ...ok, scopes: [] }).success).toBe(false);
  });
});
