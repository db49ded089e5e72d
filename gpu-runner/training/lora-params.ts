// The trainable LoRA tensors in PEFT's layout (A: [r, in], B: [out, r]) and PEFT's initialisation:
// A Kaiming-uniform with a=√5 (bound 1/√in), B zeros, so a fresh adapter starts as the base model.

import { effectiveModules, targetingProblems } from "../../src/adapters/peft.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import type { PeftLoraConfig } from "../../src/contracts/peft-config.ts";
import { AppError } from "../../src/errors.ts";
import { createRng } from "../../src/random.ts";
import type { AdapterWeights } from "../engine/types.ts";
import type { TrainModule } from "./train-graph.ts";

export interface LoraParams {
  modules: TrainModule[];
  /** Per module: A [r, in] then B [out, r], row-major. */
  a: Float32Array[];
  b: Float32Array[];
  /** Base tensors trained too (full-parameter mode), in graph layout (train-graph.ts baseGraphDims). */
  base?: BaseParam[];
}

export interface BaseParam {
  /** HF tensor name, e.g. "lm_head.weight". */
  name: string;
  dims: number[];
  data: Float32Array;
}

/** The modules a PEFT config adapts on this base, with their rank and scale (rank_pattern, rsLoRA...). */
export function trainModules(config: PeftLoraConfig, spec: BaseModelSpec): TrainModule[] {
  const problems = targetingProblems(config, spec);
  if (problems.length > 0) {
    throw new AppError("invalid_request", `LoRA config: ${problems.join("; ")}`, { details: problems });
  }
  const byName = new Map(spec.modules.map((m) => [m.name, m]));
  return effectiveModules(config, spec).map((e) => {
    const m = byName.get(e.module);
    if (!m) throw new AppError("internal_error", `module ${e.module} is not in base ${spec.id}`);
    return {
      name: e.module,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
      rank: e.rank,
      scale: e.scale,
    };
  });
}

/** PEFT's init_lora_weights=True, seeded. */
export function initLora(modules: TrainModule[], seed: number): LoraParams {
  const rng = createRng(seed);
  const a = modules.map((m) => {
    const bound = 1 / Math.sqrt(m.inFeatures);
    return Float32Array.from({ length: m.rank * m.inFeatures }, () => (2 * rng.nextFloat() - 1) * bound);
  });
  const b = modules.map((m) => new Float32Array(m.outFeatures * m.rank));
  return { modules, a, b };
}

/** Starts from an existing adapter's weights (continuing a version): shapes must match the modules. */
export function paramsFromAdapter(modules: TrainModule[], adapter: AdapterWeights): LoraParams {
  const byName = new Map(adapter.modules.map((m) => [m.module, m]));
  const problems: string[] = [];
  const a: Float32Array[] = [];
  const b: Float32Array[] = [];
  for (const m of modules) {
    const w = byName.get(m.name);
    if (!w || w.rank !== m.rank) {
      problems.push(
        `${m.name}: needs rank ${m.rank}; the adapter has ${w ? `rank ${w.rank}` : "no such module"}`,
      );
      continue;
    }
    a.push(Float32Array.from(w.a));
    b.push(Float32Array.from(w.b));
  }
  if (problems.length > 0) {
    throw new AppError("invalid_adapter", `cannot continue from adapter: ${problems.join("; ")}`, {
      details: problems,
    });
  }
  return { modules, a, b };
}

/** Every trained tensor in optimizer order: all A, all B, then base tensors. */
export function tensorsOf(p: LoraParams): Float32Array[] {
  return [...p.a, ...p.b, ...(p.base ?? []).map((t) => t.data)];
}
