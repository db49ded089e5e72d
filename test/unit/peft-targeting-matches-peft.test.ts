// Ground truth from Hugging Face PEFT 0.21 itself (test/fixtures/peft/make-peft-fixtures.py, run on the GPU
// machine): for each config, the modules PEFT wraps with their r and scaling, or the error PEFT raises.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { effectiveModules, targetingProblems } from "../../src/adapters/peft.ts";
import { validateAdapter } from "../../src/adapters/validate.ts";
import { loadAdapterWeights } from "../../src/adapters/weights.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { PeftLoraConfigSchema } from "../../src/contracts/peft-config.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { demoSpec } from "../helpers/peft-files.ts";

interface PeftCase {
  config: Record<string, unknown>;
  modules?: Record<string, [number, number]>;
  error?: string;
}

const fixtures = new URL("../fixtures/peft/", import.meta.url);
const truth = JSON.parse(readFileSync(new URL("peft-targeting.json", fixtures), "utf8")) as {
  versions: Record<string, string>;
  cases: Record<string, PeftCase>;
};

let spec: BaseModelSpec;
beforeAll(async () => {
  spec = await demoSpec();
});

describe(`targeting and scaling match PEFT ${truth.versions.peft}`, () => {
  const cases = Object.entries(truth.cases);

  it("has cases PEFT accepted and cases it refused", () => {
    expect(cases.filter(([, c]) => c.modules).length).toBeGreaterThan(10);
    expect(cases.filter(([, c]) => c.error).length).toBeGreaterThan(2);
  });

  it.each(cases.filter(([, c]) => c.modules))("%s: same modules, ranks and scales", (_, c) => {
    const config = PeftLoraConfigSchema.parse({ peft_type: "LORA", ...c.config });
    const ours = effectiveModules(config, spec);
    expect(ours.map((m) => m.module).sort()).toEqual(Object.keys(c.modules ?? {}).sort());
    for (const m of ours) {
      const [rank, scale] = c.modules?.[m.module] ?? [];
      expect(m.rank).toBe(rank);
      expect(m.scale).toBeCloseTo(scale as number, 12);
    }
    expect(targetingProblems(config, spec)).toEqual([]);
  });

  it.each(cases.filter(([, c]) => c.error))("%s: refused, as PEFT refuses it", (_, c) => {
    const config = PeftLoraConfigSchema.parse({ peft_type: "LORA", ...c.config });
    expect(targetingProblems(config, spec).length).toBeGreaterThan(0);
  });
});

describe("an adapter saved by PEFT 0.21", () => {
  it("validates against the demo base and decodes to the saved values", () => {
    const config = JSON.parse(readFileSync(new URL("real/adapter_config.json", fixtures), "utf8"));
    const file = readSafetensors(
      new Uint8Array(readFileSync(new URL("real/adapter_model.safetensors", fixtures))),
    );
    const adapter = validateAdapter({ name: "real", config, header: file, spec });
    expect(adapter.modules).toHaveLength(14);
    for (const m of adapter.modules) {
      const expected = m.module.endsWith("down_proj") ? [4, 4] : [8, 2];
      expect([m.rank, m.scale]).toEqual(expected);
    }
    const weights = loadAdapterWeights(file, adapter);
    const down = weights.modules.find((m) => m.module === "model.layers.1.mlp.down_proj");
    expect(down?.a).toHaveLength(4 * 128);
    expect(down?.b).toHaveLength(64 * 4);
    // init_lora_weights=false: B is random, so the adapter changes outputs.
    expect(down?.b.some((v) => v !== 0)).toBe(true);
  });
});
