import { describe, expect, it } from "vitest";
import { BaseModelSpecSchema, baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { AppError } from "../../src/errors.ts";
import { demoSpec, demoSpecConfig } from "../helpers/peft-files.ts";

async function refusal(config: unknown): Promise<AppError> {
  try {
    await baseModelSpecFromConfig("m", config);
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe("invalid_model");
    return error as AppError;
  }
  throw new Error("expected a refusal; the config was accepted");
}

describe("baseModelSpecFromConfig", () => {
  it("derives GQA shapes for every linear of every layer", async () => {
    const spec = await demoSpec();
    expect(spec).toMatchObject({
      architecture: "llama",
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      numLayers: 2,
    });
    expect(spec.modules).toHaveLength(14);
    const shape = (name: string) => {
      const m = spec.modules.find((x) => x.name === name);
      return m && [m.inFeatures, m.outFeatures, m.layer, m.kind];
    };
    expect(shape("model.layers.1.self_attn.q_proj")).toEqual([64, 64, 1, "q_proj"]);
    expect(shape("model.layers.1.self_attn.k_proj")).toEqual([64, 32, 1, "k_proj"]);
    expect(shape("model.layers.1.self_attn.v_proj")).toEqual([64, 32, 1, "v_proj"]);
    expect(shape("model.layers.1.self_attn.o_proj")).toEqual([64, 64, 1, "o_proj"]);
    expect(shape("model.layers.0.mlp.gate_proj")).toEqual([64, 128, 0, "gate_proj"]);
    expect(shape("model.layers.0.mlp.up_proj")).toEqual([64, 128, 0, "up_proj"]);
    expect(shape("model.layers.0.mlp.down_proj")).toEqual([128, 64, 0, "down_proj"]);
  });

  it("uses head_dim when it differs from hidden/heads, and defaults kv heads to heads", async () => {
    const spec = await demoSpec("x", { head_dim: 32, num_key_value_heads: null });
    expect(spec.numKvHeads).toBe(4);
    const q = spec.modules.find((m) => m.kind === "q_proj");
    const o = spec.modules.find((m) => m.kind === "o_proj");
    expect([q?.outFeatures, o?.inFeatures, o?.outFeatures]).toEqual([128, 128, 64]);
    const derived = await demoSpec("x", { head_dim: undefined });
    expect(derived.headDim).toBe(16);
  });

  it("marks biases by family: qwen2 q/k/v, llama per attention_bias, mistral none", async () => {
    const biased = async (model_type: string, extra: Record<string, unknown> = {}) =>
      (await demoSpec("x", { model_type, ...extra })).modules
        .filter((m) => m.layer === 0 && m.bias)
        .map((m) => m.kind);
    expect(await biased("qwen2")).toEqual(["q_proj", "k_proj", "v_proj"]);
    expect(await biased("llama")).toEqual([]);
    expect(await biased("llama", { attention_bias: true })).toEqual(["q_proj", "k_proj", "v_proj", "o_proj"]);
    expect(await biased("mistral", { attention_bias: true })).toEqual([]);
  });

  it("fingerprints shapes: stable across key order and ids, different when a shape changes", async () => {
    const a = await demoSpec("a");
    const reordered = Object.fromEntries(Object.entries(demoSpecConfig()).reverse());
    const b = await baseModelSpecFromConfig("b", reordered);
    const c = await demoSpec("a", { intermediate_size: 256 });
    const d = await demoSpec("a", { model_type: "qwen2" });
    expect(a.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(c.fingerprint).not.toBe(a.fingerprint);
    expect(d.fingerprint).not.toBe(a.fingerprint);
  });

  it("refuses an unknown model_type by name", async () => {
    const error = await refusal({ ...demoSpecConfig(), model_type: "gpt2" });
    expect(error.message).toBe(
      'base model "m" config.json: model_type: must be one of llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3; got "gpt2" (not supported)',
    );
  });

  it("names every bad field at once", async () => {
    const error = await refusal({
      ...demoSpecConfig(),
      model_type: "falcon",
      hidden_size: "64",
      num_hidden_layers: 0,
      vocab_size: undefined,
    });
    expect(error.details).toEqual([
      'base model "m" config.json: model_type: must be one of llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3; got "falcon" (not supported)',
      'base model "m" config.json: hidden_size: must be a number; got "64"',
      'base model "m" config.json: num_hidden_layers: Too small: expected number to be >0; got 0',
      'base model "m" config.json: vocab_size: is required (number)',
    ]);
    expect(error.message).toBe(`${error.details[0]} (and 3 more)`);
  });

  it("refuses head layouts that do not divide", async () => {
    const error = await refusal({
      ...demoSpecConfig(),
      num_key_value_heads: 3,
      head_dim: null,
      hidden_size: 66,
    });
    expect(error.details).toEqual([
      'base model "m" config.json: num_key_value_heads: must divide num_attention_heads (4); got 3',
      'base model "m" config.json: hidden_size: must be a multiple of num_attention_heads (4) when head_dim is absent; got 66',
    ]);
  });

  it("round-trips through JSON and BaseModelSpecSchema", async () => {
    const spec = await demoSpec();
    expect(BaseModelSpecSchema.parse(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
    expect(BaseModelSpecSchema.safeParse({ ...spec, fingerprint: "nope" }).success).toBe(false);
  });
});
