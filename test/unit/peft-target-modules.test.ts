import { beforeAll, describe, expect, it } from "vitest";
import { effectiveModules } from "../../src/adapters/peft.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { PeftLoraConfigSchema } from "../../src/contracts/peft-config.ts";
import { demoSpec, peftConfigJson } from "../helpers/peft-files.ts";

let spec: BaseModelSpec;
beforeAll(async () => {
  spec = await demoSpec();
});

/** Effective modules as `name → [rank, scale]` for a PEFT 0.21 config with `overrides`. */
function targeted(overrides: Record<string, unknown>): Record<string, [number, number]> {
  const config = PeftLoraConfigSchema.parse(peftConfigJson({ r: 8, lora_alpha: 16, ...overrides }));
  return Object.fromEntries(effectiveModules(config, spec).map((m) => [m.module, [m.rank, m.scale]]));
}

const L = (layer: number, path: string) => `model.layers.${layer}.${path}`;

describe("target_modules as a list", () => {
  it("matches dotted suffixes in every layer, scale alpha/r", () => {
    expect(targeted({ target_modules: ["q_proj", "v_proj"] })).toEqual({
      [L(0, "self_attn.q_proj")]: [8, 2],
      [L(0, "self_attn.v_proj")]: [8, 2],
      [L(1, "self_attn.q_proj")]: [8, 2],
      [L(1, "self_attn.v_proj")]: [8, 2],
    });
  });

  it("defaults to q_proj and v_proj when null, as PEFT does for llama", () => {
    expect(Object.keys(targeted({ target_modules: null }))).toEqual([
      L(0, "self_attn.q_proj"),
      L(0, "self_attn.v_proj"),
      L(1, "self_attn.q_proj"),
      L(1, "self_attn.v_proj"),
    ]);
  });

  it("matches an exact full name and multi-part suffixes", () => {
    expect(Object.keys(targeted({ target_modules: [L(1, "mlp.down_proj"), "self_attn.o_proj"] }))).toEqual([
      L(0, "self_attn.o_proj"),
      L(1, "self_attn.o_proj"),
      L(1, "mlp.down_proj"),
    ]);
  });

  it("does not match a bare substring that is not a dotted suffix", () => {
    expect(targeted({ target_modules: ["proj", "_proj", "elf_attn.q_proj"] })).toEqual({});
  });
});

describe("target_modules as a string", () => {
  it("is a regex that must match the whole name", () => {
    expect(Object.keys(targeted({ target_modules: String.raw`.*\.(q|k)_proj` }))).toEqual([
      L(0, "self_attn.q_proj"),
      L(0, "self_attn.k_proj"),
      L(1, "self_attn.q_proj"),
      L(1, "self_attn.k_proj"),
    ]);
    expect(targeted({ target_modules: "q_proj" })).toEqual({});
    expect(Object.keys(targeted({ target_modules: String.raw`model\.layers\.1\..*mlp.*` }))).toEqual([
      L(1, "mlp.gate_proj"),
      L(1, "mlp.up_proj"),
      L(1, "mlp.down_proj"),
    ]);
  });

  it('"all-linear" adapts all 7 linears of every layer', () => {
    expect(Object.keys(targeted({ target_modules: "all-linear" }))).toHaveLength(14);
  });

  it("exclude_modules removes modules by suffix list or regex", () => {
    const bySuffix = targeted({ target_modules: "all-linear", exclude_modules: ["k_proj", "mlp.up_proj"] });
    expect(Object.keys(bySuffix)).toHaveLength(10);
    expect(bySuffix[L(0, "self_attn.k_proj")]).toBeUndefined();
    const byRegex = targeted({ target_modules: "all-linear", exclude_modules: String.raw`.*layers\.0\..*` });
    expect(Object.keys(byRegex).every((name) => name.startsWith("model.layers.1."))).toBe(true);
    expect(Object.keys(byRegex)).toHaveLength(7);
  });
});

describe("layers_to_transform and layers_pattern", () => {
  it("restricts suffix matches to the listed layers (list or single int)", () => {
    expect(Object.keys(targeted({ layers_to_transform: [1] }))).toEqual([
      L(1, "self_attn.q_proj"),
      L(1, "self_attn.v_proj"),
    ]);
    expect(Object.keys(targeted({ layers_to_transform: 0 }))).toEqual([
      L(0, "self_attn.q_proj"),
      L(0, "self_attn.v_proj"),
    ]);
  });

  it("keeps an exact full name outside the listed layers, as PEFT's check_target_module_exists does", () => {
    expect(
      Object.keys(
        targeted({ target_modules: [L(0, "self_attn.q_proj"), "v_proj"], layers_to_transform: [1] }),
      ),
    ).toEqual([L(0, "self_attn.q_proj"), L(1, "self_attn.v_proj")]);
  });

  it("reads the layer index after layers_pattern; a pattern absent from the names adapts nothing", () => {
    expect(Object.keys(targeted({ layers_to_transform: [0], layers_pattern: "layers" }))).toHaveLength(2);
    expect(Object.keys(targeted({ layers_to_transform: [0], layers_pattern: ["h", "layers"] }))).toHaveLength(
      2,
    );
    expect(targeted({ layers_to_transform: [0], layers_pattern: "h" })).toEqual({});
  });
});

describe("rank_pattern, alpha_pattern and rsLoRA", () => {
  it("overrides r and alpha per module with re.match(rf'(.*\\.)?({key})$')", () => {
    const got = targeted({
      target_modules: "all-linear",
      rank_pattern: { "layers.1.mlp.down_proj": 32, q_proj: 4 },
      alpha_pattern: { v_proj: 64 },
    });
    expect(got[L(1, "mlp.down_proj")]).toEqual([32, 0.5]);
    expect(got[L(0, "mlp.down_proj")]).toEqual([8, 2]);
    expect(got[L(0, "self_attn.q_proj")]).toEqual([4, 4]);
    expect(got[L(1, "self_attn.v_proj")]).toEqual([8, 8]);
    expect(got[L(0, "self_attn.k_proj")]).toEqual([8, 2]);
  });

  it("needs the key to end the name at a dot boundary", () => {
    const got = targeted({ rank_pattern: { proj: 2, _proj: 3 } });
    expect(Object.values(got).every(([r]) => r === 8)).toBe(true);
  });

  it("takes the first matching key in the dict's order", () => {
    const got = targeted({ rank_pattern: { ".*_proj": 2, q_proj: 4 } });
    expect(got[L(0, "self_attn.q_proj")]).toEqual([2, 8]);
  });

  it("scales by alpha/sqrt(r) with use_rslora, pattern ranks included", () => {
    const got = targeted({ r: 16, lora_alpha: 32, use_rslora: true, rank_pattern: { v_proj: 4 } });
    expect(got[L(0, "self_attn.q_proj")]).toEqual([16, 8]);
    expect(got[L(0, "self_attn.v_proj")]).toEqual([4, 16]);
  });
});
