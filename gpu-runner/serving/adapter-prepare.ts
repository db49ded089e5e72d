// Turns uploaded or on-disk PEFT bytes into engine weights, through the shared validation in src/adapters
// (the same rules the edge applies at publish time), and computes the content id the cache keys on.
import { PEFT_WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { adapterId, validateAdapter } from "../../src/adapters/validate.ts";
import { loadAdapterWeights } from "../../src/adapters/weights.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import type { PrepareAdapter } from "./adapters.ts";

export function createPrepareAdapter(spec: BaseModelSpec, maxRank: number): PrepareAdapter {
  return async ({ config, weights, label, weightsSha256 }) => {
    const file = readSafetensors(weights, `${label} ${PEFT_WEIGHTS_FILE}`);
    const validated = validateAdapter({ name: label, config, header: file, spec, maxRank });
    const modules = loadAdapterWeights(file, validated).modules;
    return {
      adapterId: await adapterId(weightsSha256 ?? (await sha256Hex(weights)), validated),
      weights: { modules },
      rank: Math.max(...validated.modules.map((m) => m.rank)),
      sizeBytes: weights.byteLength,
    };
  };
}
