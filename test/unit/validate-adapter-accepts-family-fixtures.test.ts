// The family fixtures in test/fixtures/hf (qwen3, gemma2, gemma3_text, phi3; see its README, "Families"):
// each config.json as transformers 5 wrote it gives the family's linears and shapes, PEFT's adapters for it
// validate with PEFT's ranks and scales (`all-linear` and an attention-only rsLoRA), and Phi-3's fused
// qkv_proj and gate_up_proj are targeted, shaped and refused the way PEFT treats them.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { validateAdapter } from "../../src/adapters/validate.ts";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { AppError } from "../../src/errors.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { makePeftAdapter } from "../helpers/peft-files.ts";

const hf = new URL("../fixtures/hf/", import.meta.url);
const json = (path: string) => JSON.parse(readFileSync(new URL(path, hf), "utf8"));
const spec = (model: string) => baseModelSpecFromConfig(model, json(`${model}/config.json`));

const SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const FAMILIES = {
  "tiny-qwen3": { type: "qwen3", layers: 2, linears: SEVEN, attention: SEVEN.slice(0, 4) },
  "tiny-gemma2": { type: "gemma2", layers: 2, linears: SEVEN, attention: SEVEN.slice(0, 4) },
  "tiny-gemma3": { type: "gemma3_text", layers: 3, linears: SEVEN, attention: SEVEN.slice(0, 4) },
  "tiny-phi3": {
    type: "phi3",
    layers: 2,
    linears: ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    attention: ["qkv_proj", "o_proj"],
  },
} as const;

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error("expected a refusal; the adapter was accepted");
}

describe.each(Object.entries(FAMILIES))("%s", (model, family) => {
  it("config.json gives the family's linears, in its order, unbiased", async () => {
    const s = await spec(model);
    expect(s.architecture).toBe(family.type);
    expect(s.modules).toHaveLength(family.layers * family.linears.length);
    expect(s.modules.filter((m) => m.layer === 0).map((m) => m.kind)).toEqual(family.linears);
    expect(s.modules.some((m) => m.bias)).toBe(false);
  });

  it.each([
    ["all-linear", family.linears, 4, 2],
    ["attn", family.attention, 8, 16 / Math.sqrt(8)],
  ] as const)(
    "validates PEFT's %s adapter with its ranks and scales",
    async (adapter, kinds, rank, scale) => {
      const s = await spec(model);
      const dir = `${model}/adapters/${adapter}/`;
      const file = readSafetensors(
        new Uint8Array(readFileSync(new URL(`${dir}adapter_model.safetensors`, hf))),
      );
      const validated = validateAdapter({
        name: adapter,
        config: json(`${dir}adapter_config.json`),
        header: file,
        spec: s,
      });
      expect(new Set(validated.modules.map((m) => m.module.split(".").pop()))).toEqual(new Set(kinds));
      expect(validated.modules).toHaveLength(family.layers * kinds.length);
      for (const m of validated.modules) {
        expect([m.module, m.rank]).toEqual([m.module, rank]);
        expect(m.scale).toBeCloseTo(scale, 12);
      }
    },
  );

  it('a hand-written target_modules "all-linear" adapts every linear of the family', async () => {
    const s = await spec(model);
    const built = makePeftAdapter({ spec: s, targets: "all-linear", r: 2 });
    const validated = validateAdapter({
      config: built.config,
      header: readSafetensors(built.safetensors),
      spec: s,
    });
    expect(validated.modules.map((m) => m.module)).toEqual(s.modules.map((m) => m.name));
  });
});

describe("phi3's fused linears", () => {
  it("PEFT's default targets for phi3 are qkv_proj, with its full out_features (q + k + v)", async () => {
    const s = await spec("tiny-phi3");
    const built = makePeftAdapter({ spec: s, r: 2, config: { target_modules: null } });
    const validated = validateAdapter({
      config: built.config,
      header: readSafetensors(built.safetensors),
      spec: s,
    });
    expect(validated.modules.map((m) => [m.module, m.inFeatures, m.outFeatures])).toEqual([
      ["model.layers.0.self_attn.qkv_proj", 64, 128],
      ["model.layers.1.self_attn.qkv_proj", 64, 128],
    ]);
    const gateUp = s.modules.find((m) => m.kind === "gate_up_proj");
    expect([gateUp?.inFeatures, gateUp?.outFeatures]).toEqual([64, 256]);
  });

  it("refuses q_proj (phi3 has none) and a qkv_proj B sized for q alone, naming module, rule and value", async () => {
    const phi3 = await spec("tiny-phi3");
    const qwen3 = await spec("tiny-qwen3");
    const llamaShaped = makePeftAdapter({ spec: qwen3, targets: ["q_proj"], r: 2 });
    const noSuchModule = refusal(() =>
      validateAdapter({
        config: llamaShaped.config,
        header: readSafetensors(llamaShaped.safetensors),
        spec: phi3,
      }),
    );
    expect(noSuchModule.details).toContain(
      'adapter: adapter_config.json target_modules ["q_proj"] adapts no module of base "tiny-phi3"',
    );
    // A qwen3 q_proj has 128 outputs like phi3's qkv_proj; a gemma2 one has 64: renamed, it does not fit.
    const gemma2 = await spec("tiny-gemma2");
    const narrow = makePeftAdapter({ spec: gemma2, targets: ["q_proj"], r: 2 });
    const renamed = new Uint8Array(narrow.safetensors);
    const header = readSafetensors(renamed);
    for (const t of header.tensors) t.name = t.name.replace("q_proj", "qkv_proj");
    const error = refusal(() =>
      validateAdapter({ config: { ...narrow.config, target_modules: ["qkv_proj"] }, header, spec: phi3 }),
    );
    expect(error.details).toContain(
      'adapter targets model.layers.0.self_attn.qkv_proj with out_features 64; base "tiny-phi3" has 128',
    );
  });
});
