// Adapter weights as the engine takes them, decoded from a validated safetensors file. The runner's engine
// contract re-exports these types, so there is one definition.
import { AppError } from "../errors.ts";
import { type SafetensorsFile, type TensorInfo, tensorBytes, toFloat32 } from "../safetensors.ts";
import type { ValidatedAdapter } from "./validate.ts";

/** One adapted linear. A: [r, in], B: [out, r], float32, row-major. */
export interface AdapterModuleWeights {
  /** Module path without the PEFT prefix, e.g. `model.layers.0.self_attn.q_proj`. */
  module: string;
  rank: number;
  /** lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA, after rank_pattern / alpha_pattern. */
  scale: number;
  a: Float32Array;
  b: Float32Array;
}

export interface AdapterWeights {
  modules: AdapterModuleWeights[];
}

function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i] as number)) return i;
  }
  return -1;
}

function decode(
  file: SafetensorsFile,
  byName: Map<string, TensorInfo>,
  key: string,
  module: string,
  shape: [number, number],
): Float32Array {
  const info = byName.get(key);
  if (info === undefined) {
    throw new AppError("invalid_adapter", `adapter weights: tensor "${key}" of ${module} is not in the file`);
  }
  if (info.shape.length !== 2 || info.shape[0] !== shape[0] || info.shape[1] !== shape[1]) {
    throw new AppError(
      "invalid_adapter",
      `adapter weights: tensor "${key}" has shape ${JSON.stringify(info.shape)}; validation expected ${JSON.stringify(shape)}`,
    );
  }
  const values = toFloat32(info.dtype, tensorBytes(file, info), key);
  const bad = firstNonFinite(values);
  if (bad !== -1) {
    throw new AppError(
      "invalid_adapter",
      `adapter weights: ${module} tensor "${key}" holds a non-finite value (${values[bad]}) at index ${bad}`,
    );
  }
  return values;
}

/**
 * Decodes every adapted module to float32. fan_in_fan_out needs no transpose here: PEFT keeps lora_A/lora_B
 * as nn.Linear weights ([r, in] / [out, r]) whatever the flag, and forces the flag off for nn.Linear bases
 * (peft/tuners/lora/model.py, dispatch_default), which are the only bases we serve.
 */
export function loadAdapterWeights(file: SafetensorsFile, adapter: ValidatedAdapter): AdapterWeights {
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  return {
    modules: adapter.modules.map((m) => ({
      module: m.module,
      rank: m.rank,
      scale: m.scale,
      a: decode(file, byName, m.keyA, m.module, [m.rank, m.inFeatures]),
      b: decode(file, byName, m.keyB, m.module, [m.outFeatures, m.rank]),
    })),
  };
}
