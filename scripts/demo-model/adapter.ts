// Seeded PEFT LoRA adapters for the demo model, with non-zero B so that each adapter changes the output.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { createRng } from "../../src/random.ts";
import { fromFloat32, type TensorToWrite, writeSafetensors } from "../../src/safetensors.ts";
import { DEFAULT_DIMS, type DemoDims, llamaShapes } from "./weights.ts";

export interface DemoAdapterOptions {
  seed: number;
  rank?: number;
  alpha?: number;
  targetModules?: string[];
  useRslora?: boolean;
  dims?: DemoDims;
}

export interface DemoAdapter {
  config: Record<string, unknown>;
  weights: Uint8Array;
}

function gaussian(rng: ReturnType<typeof createRng>, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) out[k] = rng.nextNormal() * std;
  return out;
}

/** A: [r, in], B: [out, r], keyed as PEFT saves them (`base_model.model.<module>.lora_A.weight`). */
export function makeDemoAdapter(options: DemoAdapterOptions): DemoAdapter {
  const rank = options.rank ?? 8;
  const targets = options.targetModules ?? ["q_proj", "v_proj"];
  const rng = createRng(options.seed);
  const tensors: Record<string, TensorToWrite> = {};
  const shapes = llamaShapes(options.dims ?? DEFAULT_DIMS);
  for (const [name, shape] of [...shapes].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const module = name.replace(/\.weight$/, "");
    if (!targets.some((t) => module.endsWith(`.${t}`))) continue;
    const [outFeatures, inFeatures] = shape as [number, number];
    const prefix = `base_model.model.${module}`;
    const a = gaussian(rng, rank * inFeatures, 0.05);
    const b = gaussian(rng, outFeatures * rank, 0.05);
    tensors[`${prefix}.lora_A.weight`] = {
      dtype: "F32",
      shape: [rank, inFeatures],
      data: fromFloat32("F32", a),
    };
    tensors[`${prefix}.lora_B.weight`] = {
      dtype: "F32",
      shape: [outFeatures, rank],
      data: fromFloat32("F32", b),
    };
  }
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: "demo-llama",
    r: rank,
    lora_alpha: options.alpha ?? 2 * rank,
    lora_dropout: 0,
    target_modules: targets,
    bias: "none",
    use_rslora: options.useRslora ?? false,
    use_dora: false,
    fan_in_fan_out: false,
    init_lora_weights: true,
    modules_to_save: null,
    rank_pattern: {},
    alpha_pattern: {},
    inference_mode: true,
  };
  return { config, weights: writeSafetensors(tensors) };
}

export async function writeDemoAdapter(dir: string, options: DemoAdapterOptions): Promise<void> {
  const adapter = makeDemoAdapter(options);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, PEFT_CONFIG_FILE), `${JSON.stringify(adapter.config, null, 2)}\n`);
  await writeFile(join(dir, PEFT_WEIGHTS_FILE), adapter.weights);
}
