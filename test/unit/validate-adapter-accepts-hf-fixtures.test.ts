// The adapters PEFT 0.21 saved for the tiny Hugging Face models in test/fixtures/hf (see its README):
// each base's config.json must parse, and each adapter must validate with the r and scale PEFT used.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { validateAdapter } from "../../src/adapters/validate.ts";
import { loadAdapterWeights } from "../../src/adapters/weights.ts";
import { baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { readSafetensors } from "../../src/safetensors.ts";

const hf = new URL("../fixtures/hf/", import.meta.url);
const json = (path: string) => JSON.parse(readFileSync(new URL(path, hf), "utf8"));

/** [rank, scale] per module kind, or per full name where a pattern singles one out (fixtures README). */
const EXPECTED: Record<string, (module: string) => [number, number]> = {
  qv: () => [8, 2],
  all7: () => [4, 4],
  patterns: (m) => {
    if (m.endsWith("k_proj")) return [4, 2];
    if (m === "model.layers.1.self_attn.o_proj") return [2, 4];
    if (m.endsWith("v_proj")) return [8, 4];
    return [8, 1];
  },
};
const TARGETS: Record<string, string[]> = {
  qv: ["q_proj", "v_proj"],
  all7: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  patterns: ["q_proj", "k_proj", "v_proj", "o_proj"],
};

describe.each(["tiny-llama", "tiny-llama3", "tiny-qwen2"])("%s", (model) => {
  it("parses config.json as written by transformers 5", async () => {
    const spec = await baseModelSpecFromConfig(model, json(`${model}/config.json`));
    expect(spec).toMatchObject({ hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 256 });
    expect(spec.headDim).toBe(model === "tiny-llama3" ? 32 : 16);
    const biased = spec.modules.filter((m) => m.bias).map((m) => m.kind);
    expect(new Set(biased)).toEqual(new Set(model === "tiny-qwen2" ? ["q_proj", "k_proj", "v_proj"] : []));
  });

  it.each(Object.keys(EXPECTED))("validates adapter %s with PEFT's ranks and scales", async (adapter) => {
    const spec = await baseModelSpecFromConfig(model, json(`${model}/config.json`));
    const dir = `${model}/adapters/${adapter}/`;
    const file = readSafetensors(
      new Uint8Array(readFileSync(new URL(`${dir}adapter_model.safetensors`, hf))),
    );
    const validated = validateAdapter({
      name: adapter,
      config: json(`${dir}adapter_config.json`),
      header: file,
      spec,
    });
    const kinds = new Set(validated.modules.map((m) => m.module.split(".").pop()));
    expect(kinds).toEqual(new Set(TARGETS[adapter]));
    expect(validated.modules).toHaveLength(2 * (TARGETS[adapter]?.length ?? 0));
    for (const m of validated.modules) {
      const [rank, scale] = EXPECTED[adapter]?.(m.module) ?? [];
      expect([m.module, m.rank]).toEqual([m.module, rank]);
      expect(m.scale).toBeCloseTo(scale as number, 12);
    }
    const weights = loadAdapterWeights(file, validated);
    expect(weights.modules.every((m) => m.b.some((v) => v !== 0))).toBe(true);
  });
});
