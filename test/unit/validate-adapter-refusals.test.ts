import { beforeAll, describe, expect, it } from "vitest";
import { refusePickle, validateAdapter } from "../../src/adapters/validate.ts";
import { loadAdapterWeights } from "../../src/adapters/weights.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { AppError } from "../../src/errors.ts";
import { fromFloat32, readSafetensors, type TensorToWrite, writeSafetensors } from "../../src/safetensors.ts";
import { demoSpec, type MakePeftAdapterOptions, makePeftAdapter } from "../helpers/peft-files.ts";

let spec: BaseModelSpec;
beforeAll(async () => {
  spec = await demoSpec();
});

/** The AppError validateAdapter throws for an adapter built with `options` (config overrides in `config`). */
function refusal(
  options: Partial<MakePeftAdapterOptions> = {},
  tweak?: { config?: Record<string, unknown>; maxRank?: number; against?: BaseModelSpec },
): AppError {
  const built = makePeftAdapter({ spec, r: 4, ...options });
  const config = { ...built.config, ...tweak?.config };
  return catchError(() =>
    validateAdapter({
      name: "support",
      config,
      header: readSafetensors(built.safetensors),
      spec: tweak?.against ?? spec,
      ...(tweak?.maxRank === undefined ? {} : { maxRank: tweak.maxRank }),
    }),
  );
}

function catchError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error("expected a refusal; the adapter was accepted");
}

/** A file from raw tensors, for keys makePeftAdapter never writes. */
function fileOf(tensors: Record<string, [number[], "F32" | "F16" | "BF16" | "I32"]>): Uint8Array {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, [shape, dtype]] of Object.entries(tensors)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = dtype === "I32" ? new Uint8Array(n * 4) : fromFloat32(dtype, new Float32Array(n).fill(0.01));
    out[name] = { dtype, shape, data };
  }
  return writeSafetensors(out);
}

const Q0 = "base_model.model.model.layers.0.self_attn.q_proj";

describe("validateAdapter refuses features that are not additive LoRA", () => {
  it.each([
    [{ use_dora: true }, "adapter_config.json use_dora is true: DoRA is not supported"],
    [
      { modules_to_save: ["lm_head"] },
      'adapter_config.json modules_to_save is ["lm_head"]: modules_to_save is not supported',
    ],
    [{ bias: "all" }, 'adapter_config.json bias is "all"; only "none" is supported'],
    [{ bias: "lora_only" }, 'adapter_config.json bias is "lora_only"; only "none" is supported'],
    [{ lora_bias: true }, "adapter_config.json lora_bias is true: a bias on lora_B is not supported"],
    [{ init_lora_weights: "pissa_niter_4" }, 'init_lora_weights is "pissa_niter_4" (PiSSA changes'],
    [{ init_lora_weights: "olora" }, 'init_lora_weights is "olora" (OLoRA changes'],
    [{ init_lora_weights: "loftq" }, 'init_lora_weights is "loftq" (LoftQ changes'],
    [{ init_lora_weights: "eva" }, 'init_lora_weights is "eva" (EVA changes'],
    [
      { init_lora_weights: "orthogonal" },
      'init_lora_weights is "orthogonal"; only true, false or "gaussian"',
    ],
    [{ target_parameters: ["mlp.experts.down_proj"] }, "target_parameters is"],
    [
      { layer_replication: [[0, 2]] },
      "layer_replication is [[0,2]]: layer replication changes the base model",
    ],
    [{ init_lora_weights: "lora_ga" }, 'init_lora_weights is "lora_ga" (LoRA-GA changes'],
    [{ kasa_config: { r: 4 } }, 'kasa_config is {"r":4}: KaSA'],
    [{ use_bdlora: { lora_a_is_blockdiagonal: true } }, "use_bdlora is"],
    [{ monteclora_config: { n: 2 } }, "MonteCLoRA"],
    [{ arrow_config: { top_k: 2 } }, "Arrow routing"],
    [{ alora_invocation_tokens: [1, 2] }, "activated LoRA"],
    [
      { peft_type: "IA3" },
      'adapter_config.json peft_type: must be "LORA" (only LoRA adapters are supported); got "IA3"',
    ],
    [{ r: 0 }, "adapter_config.json r: Too small: expected number to be >0; got 0"],
  ])("config %j", (config, message) => {
    const error = refusal({}, { config });
    expect(error.code).toBe("invalid_adapter");
    expect(error.message).toContain('adapter "support": ');
    expect(error.message).toContain(message);
  });

  it("accepts VeLoRA, which changes only the backward pass, and empty variant fields", () => {
    const built = makePeftAdapter({
      spec,
      config: { velora_config: { rank: 4 }, loftq_config: {}, kasa_config: null, use_bdlora: null },
    });
    const header = readSafetensors(built.safetensors);
    expect(validateAdapter({ config: built.config, header, spec }).modules).toHaveLength(4);
  });

  it("accepts init_lora_weights true, false and gaussian", () => {
    for (const init of [true, false, "gaussian"]) {
      const built = makePeftAdapter({ spec, config: { init_lora_weights: init } });
      const header = readSafetensors(built.safetensors);
      expect(validateAdapter({ config: built.config, header, spec }).modules).toHaveLength(4);
    }
  });

  it("refuses DoRA magnitude vectors in the file even when the config says nothing", () => {
    const built = makePeftAdapter({ spec, targets: ["q_proj"], r: 2 });
    const file = fileOf({
      [`${Q0}.lora_A.weight`]: [[2, 64], "F32"],
      [`${Q0}.lora_B.weight`]: [[64, 2], "F32"],
      [`${Q0}.lora_magnitude_vector`]: [[64], "F32"],
      "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight": [[2, 64], "F32"],
      "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight": [[64, 2], "F32"],
    });
    const error = catchError(() =>
      validateAdapter({ config: built.config, header: readSafetensors(file), spec }),
    );
    expect(error.message).toBe(
      "adapter: 1 lora_magnitude_vector tensors: DoRA is not supported (it is not additive)",
    );
  });

  it("refuses adapter_model.bin and other pickles by name", () => {
    const error = catchError(() => refusePickle("my-adapter/adapter_model.bin"));
    expect(error.message).toMatch(/^adapter_model\.bin is a pickle file, which can run code when loaded/);
    expect(() => refusePickle("adapter_model.safetensors")).not.toThrow();
  });
});

describe("validateAdapter checks the file against the base", () => {
  it("names the module, the in_features and the base when shapes differ", async () => {
    const wide = await demoSpec("wide-llama", { hidden_size: 256, head_dim: 64 });
    const error = refusal({ spec: wide, targets: ["q_proj"] }, { against: spec });
    expect(error.message).toBe(
      'adapter "support" targets model.layers.0.self_attn.q_proj with in_features 256; base "demo-llama" has 64 (and 3 more)',
    );
    expect(error.details).toEqual([
      'adapter "support" targets model.layers.0.self_attn.q_proj with in_features 256; base "demo-llama" has 64',
      'adapter "support" targets model.layers.0.self_attn.q_proj with out_features 256; base "demo-llama" has 64',
      'adapter "support" targets model.layers.1.self_attn.q_proj with in_features 256; base "demo-llama" has 64',
      'adapter "support" targets model.layers.1.self_attn.q_proj with out_features 256; base "demo-llama" has 64',
    ]);
  });

  it("refuses a key that matches no module of the base", () => {
    const file = fileOf({
      [`${Q0}.lora_A.weight`]: [[4, 64], "F32"],
      [`${Q0}.lora_B.weight`]: [[64, 4], "F32"],
      "base_model.model.lm_head.lora_A.weight": [[4, 64], "F32"],
      "base_model.model.lm_head.lora_B.weight": [[256, 4], "F32"],
    });
    const config = makePeftAdapter({ spec, targets: [Q0.slice(17)], r: 4 }).config;
    const error = catchError(() =>
      validateAdapter({ name: "x", config, header: readSafetensors(file), spec }),
    );
    expect(error.details).toEqual([
      'adapter "x": key "base_model.model.lm_head.lora_A.weight" matches no module of base "demo-llama"',
      'adapter "x": key "base_model.model.lm_head.lora_B.weight" matches no module of base "demo-llama"',
    ]);
  });

  it("refuses a targeted module without lora_B, and weights for an untargeted module", () => {
    const file = fileOf({
      [`${Q0}.lora_A.weight`]: [[4, 64], "F32"],
      "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight": [[4, 64], "F32"],
      "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight": [[32, 4], "F32"],
    });
    const config = makePeftAdapter({ spec, targets: [Q0.slice(17)], r: 4 }).config;
    const error = catchError(() => validateAdapter({ config, header: readSafetensors(file), spec }));
    expect(error.details).toEqual([
      "adapter: model.layers.0.self_attn.q_proj is targeted by adapter_config.json but the file has no lora_B weight",
      "adapter: file has weights for model.layers.0.self_attn.k_proj, which adapter_config.json does not target",
    ]);
  });

  it("refuses a rank that differs from the config's r or rank_pattern", () => {
    const error = refusal(
      { targets: ["v_proj"], r: 4 },
      { config: { rank_pattern: { "layers.1.self_attn.v_proj": 8 } } },
    );
    expect(error.details).toEqual([
      'adapter "support": model.layers.1.self_attn.v_proj lora_A has rank 4; adapter_config.json gives r = 8 (r / rank_pattern)',
      'adapter "support": model.layers.1.self_attn.v_proj lora_B has rank 4; adapter_config.json gives r = 8 (r / rank_pattern)',
    ]);
  });

  it("refuses ranks over maxRank", () => {
    const error = refusal({ targets: ["q_proj"], r: 16 }, { maxRank: 8 });
    expect(error.message).toBe(
      'adapter "support": model.layers.0.self_attn.q_proj rank 16 must be <= 8 (and 1 more)',
    );
  });

  it("refuses non-float and mixed dtypes", () => {
    const file = fileOf({
      [`${Q0}.lora_A.weight`]: [[4, 64], "I32"],
      [`${Q0}.lora_B.weight`]: [[64, 4], "F32"],
      "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight": [[4, 64], "BF16"],
      "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight": [[32, 4], "BF16"],
    });
    const config = makePeftAdapter({
      spec,
      targets: [Q0.slice(17), "layers.0.self_attn.v_proj"],
      r: 4,
    }).config;
    const error = catchError(() => validateAdapter({ config, header: readSafetensors(file), spec }));
    expect(error.details).toEqual([
      `adapter: tensor "${Q0}.lora_A.weight" has dtype I32; must be F32, F16 or BF16`,
      "adapter: tensors mix dtypes F32, BF16; all must share one dtype",
    ]);
  });

  it("refuses an adapter that adapts no module of the base", () => {
    const error = refusal({ targets: ["c_attn"] });
    expect(error.message).toBe(
      'adapter "support": adapter_config.json target_modules ["c_attn"] adapts no module of base "demo-llama"',
    );
  });

  it("refuses a target that matches a non-linear module, as PEFT does", () => {
    const error = refusal({ targets: ["q_proj"] }, { config: { target_modules: ["q_proj", "mlp"] } });
    expect(error.details).toEqual([
      'adapter "support": adapter_config.json target_modules ["q_proj","mlp"] matches model.layers.0.mlp, which is not a linear layer (PEFT refuses it)',
      'adapter "support": adapter_config.json target_modules ["q_proj","mlp"] matches model.layers.1.mlp, which is not a linear layer (PEFT refuses it)',
    ]);
  });

  it("refuses an invalid regex as one more problem", () => {
    const error = refusal({}, { config: { target_modules: "q_proj(", use_dora: true } });
    expect(error.details).toHaveLength(2);
    expect(error.details[1]).toContain('target_modules: "q_proj(" is not a valid regular expression');
  });
});

describe("validateAdapter reports every problem at once", () => {
  it("lists config, feature and file problems together, the first in the message", () => {
    const built = makePeftAdapter({ spec, r: 4, targets: ["q_proj"] });
    const file = readSafetensors(built.safetensors);
    const header = {
      ...file,
      tensors: [
        ...file.tensors,
        { name: "base_model.model.lm_head.weight", dtype: "F32" as const, shape: [1], begin: 0, end: 4 },
      ],
    };
    const config = { ...built.config, use_dora: true, bias: "all", lora_alpha: "big" };
    const error = catchError(() => validateAdapter({ name: "support", config, header, spec }));
    expect(error.details).toEqual([
      'adapter "support": adapter_config.json lora_alpha: must be a number; got "big"',
      'adapter "support": adapter_config.json use_dora is true: DoRA is not supported (its magnitude vector rescales the base weights, so it is not additive)',
      'adapter "support": adapter_config.json bias is "all"; only "none" is supported (trained biases change the base model)',
      'adapter "support": key "base_model.model.lm_head.weight" is not a LoRA weight (expected <module>.lora_A.weight or <module>.lora_B.weight)',
    ]);
    expect(error.message).toBe(`${error.details[0]} (and 3 more)`);
    expect(error.status).toBe(400);
  });
});

describe("loadAdapterWeights", () => {
  it("refuses non-finite values, naming the module and tensor", () => {
    const built = makePeftAdapter({ spec, targets: ["q_proj"], r: 2 });
    const file = readSafetensors(built.safetensors);
    const adapter = validateAdapter({ config: built.config, header: file, spec });
    const info = file.tensors.find(
      (t) => t.name === "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
    );
    if (!info) throw new Error("fixture lost its tensor");
    new DataView(file.bytes.buffer).setFloat32(file.dataOffset + info.begin + 12, Number.NaN, true);
    const error = catchError(() => loadAdapterWeights(file, adapter));
    expect(error.message).toBe(
      'adapter weights: model.layers.1.self_attn.q_proj tensor "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight" holds a non-finite value (NaN) at index 3',
    );
  });
});

describe("validateAdapter without a name", () => {
  it("prefixes every problem with a plain 'adapter:'", () => {
    const built = makePeftAdapter({ spec, r: 4, config: { use_dora: true } });
    const error = catchError(() =>
      validateAdapter({ config: built.config, header: readSafetensors(built.safetensors), spec }),
    );
    expect(error.message).toMatch(/^adapter: adapter_config\.json use_dora is true/);
  });
});
