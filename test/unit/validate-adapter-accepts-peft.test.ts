import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { adapterId, validateAdapter } from "../../src/adapters/validate.ts";
import { loadAdapterWeights } from "../../src/adapters/weights.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { demoSpec, makePeftAdapter } from "../helpers/peft-files.ts";

const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/peft/adapter_config.json", import.meta.url), "utf8"),
) as Record<string, unknown>;

let spec: BaseModelSpec;
beforeAll(async () => {
  spec = await demoSpec();
});

function validate(files: { config: unknown; safetensors: Uint8Array }) {
  const file = readSafetensors(files.safetensors);
  return { file, adapter: validateAdapter({ name: "support", config: files.config, header: file, spec }) };
}

describe("validateAdapter accepts PEFT adapters", () => {
  it("accepts the PEFT 0.21 adapter_config.json fixture with all its null-valued keys", () => {
    const built = makePeftAdapter({ spec, targets: fixture.target_modules as string[], r: 16, alpha: 32 });
    const { adapter } = validate({ config: fixture, safetensors: built.safetensors });
    expect(adapter.dtype).toBe("F32");
    expect(adapter.modules).toHaveLength(14);
    expect(adapter.modules.every((m) => m.rank === 16 && m.scale === 2 && m.alpha === 32)).toBe(true);
    expect(adapter.config.peft_version).toBe("0.21.0");
    expect((adapter.config as Record<string, unknown>).megatron_core).toBe("megatron.core");
  });

  it("reports the file's key names and the base's shapes per module", () => {
    const built = makePeftAdapter({ spec, targets: ["k_proj"], r: 4, defaultSuffix: true });
    const { adapter } = validate(built);
    expect(adapter.modules[0]).toEqual({
      module: "model.layers.0.self_attn.k_proj",
      rank: 4,
      alpha: 16,
      scale: 4,
      keyA: "base_model.model.model.layers.0.self_attn.k_proj.lora_A.default.weight",
      keyB: "base_model.model.model.layers.0.self_attn.k_proj.lora_B.default.weight",
      inFeatures: 64,
      outFeatures: 32,
    });
  });

  it("accepts keys without the base_model.model. prefix", () => {
    const built = makePeftAdapter({ spec, targets: ["q_proj"], r: 2 });
    const file = readSafetensors(built.safetensors);
    const renamed = { ...file, tensors: file.tensors.map((t) => ({ ...t, name: t.name.slice(17) })) };
    const adapter = validateAdapter({ config: built.config, header: renamed, spec });
    expect(adapter.modules.map((m) => m.keyA)).toEqual([
      "model.layers.0.self_attn.q_proj.lora_A.weight",
      "model.layers.1.self_attn.q_proj.lora_A.weight",
    ]);
  });

  it("decodes F32 weights exactly and BF16/F16 within their precision", () => {
    for (const [dtype, tolerance] of [
      ["F32", 0],
      ["F16", 2e-3],
      ["BF16", 1e-2],
    ] as const) {
      const built = makePeftAdapter({ spec, dtype, r: 4, seed: 7 });
      const { file, adapter } = validate(built);
      expect(adapter.dtype).toBe(dtype);
      const weights = loadAdapterWeights(file, adapter);
      expect(weights.modules).toHaveLength(4);
      for (const m of weights.modules) {
        const keyA = `base_model.model.${m.module}.lora_A.weight`;
        const expected = built.tensors[keyA] as Float32Array;
        expect(m.a).toHaveLength(4 * 64);
        const worst = Math.max(...m.a.map((v, i) => Math.abs(v - (expected[i] as number))));
        expect(worst).toBeLessThanOrEqual(tolerance);
      }
    }
  });
});

describe("adapterId", () => {
  it("is stable for the same weights and config", async () => {
    const built = makePeftAdapter({ spec, seed: 3 });
    const { adapter } = validate(built);
    const again = validate(makePeftAdapter({ spec, seed: 3 })).adapter;
    expect(await adapterId("a".repeat(64), adapter)).toBe(await adapterId("a".repeat(64), again));
    expect(await adapterId("a".repeat(64), adapter)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("changes with the weights digest, alpha, rsLoRA and fan_in_fan_out", async () => {
    const built = makePeftAdapter({ spec, seed: 3 });
    const base = validate(built).adapter;
    const id = await adapterId("a".repeat(64), base);
    const withConfig = (extra: Record<string, unknown>) =>
      adapterId(
        "a".repeat(64),
        validate({ config: { ...built.config, ...extra }, safetensors: built.safetensors }).adapter,
      );
    const others = [
      await adapterId("b".repeat(64), base),
      await withConfig({ lora_alpha: 32 }),
      await withConfig({ use_rslora: true }),
      await withConfig({ alpha_pattern: { q_proj: 8 } }),
      await withConfig({ fan_in_fan_out: true }),
    ];
    expect(new Set([id, ...others]).size).toBe(others.length + 1);
  });
});
