// Writes a trained adapter as a Hugging Face PEFT directory (adapter_config.json + adapter_model.safetensors,
// keys `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r]), and checkpoints
// (the same plus the optimizer state) that a run can resume from.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { AppError } from "../../src/errors.ts";
import {
  fromFloat32,
  readSafetensors,
  type TensorToWrite,
  tensorBytes,
  toFloat32,
  writeSafetensors,
} from "../../src/safetensors.ts";
import type { LoraParams } from "./lora-params.ts";
import type { OptimizerState } from "./optimizer.ts";

export interface ExportLoraConfig {
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  targetModules: string[] | "all-linear";
  dropout: number;
  baseModel: string;
}

export const peftKey = (module: string, which: "A" | "B") =>
  `base_model.model.${module}.lora_${which}.weight`;

/** The fields PEFT 0.21 reads for a plain LoRA adapter; the rest take PEFT's defaults. */
export function adapterConfigJson(c: ExportLoraConfig): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: c.baseModel,
    r: c.r,
    lora_alpha: c.loraAlpha,
    lora_dropout: c.dropout,
    use_rslora: c.useRslora,
    target_modules: c.targetModules,
    bias: "none",
    fan_in_fan_out: false,
    init_lora_weights: true,
    use_dora: false,
    modules_to_save: null,
    rank_pattern: {},
    alpha_pattern: {},
    inference_mode: true,
  };
}

function loraTensors(p: LoraParams): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  p.modules.forEach((m, k) => {
    out[peftKey(m.name, "A")] = {
      dtype: "F32",
      shape: [m.rank, m.inFeatures],
      data: fromFloat32("F32", p.a[k] as Float32Array),
    };
    out[peftKey(m.name, "B")] = {
      dtype: "F32",
      shape: [m.outFeatures, m.rank],
      data: fromFloat32("F32", p.b[k] as Float32Array),
    };
  });
  return out;
}

export function writePeftDir(dir: string, p: LoraParams, config: ExportLoraConfig): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, PEFT_CONFIG_FILE), `${JSON.stringify(adapterConfigJson(config), null, 2)}\n`);
  writeFileSync(join(dir, PEFT_WEIGHTS_FILE), writeSafetensors(loraTensors(p), { format: "pt" }));
}

const CheckpointStateSchema = z.strictObject({
  step: z.number().int().min(0),
  epoch: z.number().int().min(0),
  seed: z.number().int(),
});
export type CheckpointState = z.infer<typeof CheckpointStateSchema>;

/** A PEFT directory plus optimizer moments (optimizer.safetensors) and the loop position (trainer_state.json). */
export function writeCheckpoint(
  dir: string,
  p: LoraParams,
  config: ExportLoraConfig,
  opt: OptimizerState,
  state: CheckpointState,
): void {
  writePeftDir(dir, p, config);
  const moments: Record<string, TensorToWrite> = {};
  opt.m.forEach((m, k) => {
    moments[`m.${k}`] = { dtype: "F32", shape: [m.length], data: fromFloat32("F32", m) };
    moments[`v.${k}`] = {
      dtype: "F32",
      shape: [m.length],
      data: fromFloat32("F32", opt.v[k] as Float32Array),
    };
  });
  writeFileSync(join(dir, "optimizer.safetensors"), writeSafetensors(moments));
  writeFileSync(
    join(dir, "trainer_state.json"),
    `${JSON.stringify({ ...state, optimizerStep: opt.step })}\n`,
  );
}

/** Reads a checkpoint's optimizer state and loop position (the weights come through the PEFT reader). */
export function readCheckpointState(
  dir: string,
  tensors: number,
): { opt: OptimizerState; state: CheckpointState } {
  const path = join(dir, "trainer_state.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new AppError(
      "invalid_request",
      `--resume ${dir}: cannot read trainer_state.json (${(error as Error).message})`,
    );
  }
  const { optimizerStep, ...rest } = raw as { optimizerStep?: unknown };
  const state = CheckpointStateSchema.parse(rest);
  const file = readSafetensors(readFileSync(join(dir, "optimizer.safetensors")), "optimizer.safetensors");
  const read = (name: string) => {
    const info = file.tensors.find((t) => t.name === name);
    if (!info)
      throw new AppError("invalid_request", `--resume ${dir}: optimizer.safetensors lacks "${name}"`);
    return toFloat32(info.dtype, tensorBytes(file, info), name);
  };
  const m = Array.from({ length: tensors }, (_, k) => read(`m.${k}`));
  const v = Array.from({ length: tensors }, (_, k) => read(`v.${k}`));
  return { opt: { step: typeof optimizerStep === "number" ? optimizerStep : state.step, m, v }, state };
}
