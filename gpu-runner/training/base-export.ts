// Full-parameter mode's output: a new Hugging Face model directory, the source's config and tokenizer files
// copied as they are, the weights rewritten as one float32 model.safetensors with the trained tensors in.
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fromFloat32, type TensorToWrite, writeSafetensors } from "../../src/safetensors.ts";
import type { HfModel } from "../engine/model/hf-model.ts";
import { transposeMatrix } from "../engine/onnx/llama-decoder.ts";
import type { BaseParam } from "./lora-params.ts";

/** The trained tensor in HF layout (linear weights come back from the graph's [in, out]). */
function hfLayout(p: BaseParam, shape: number[]): Float32Array {
  if (p.dims.join(",") === shape.join(",")) return p.data;
  return transposeMatrix(p.data, p.dims[0] as number, p.dims[1] as number);
}

export function writeTrainedBase(model: HfModel, outDir: string, trained: BaseParam[]): void {
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(model.dir)) {
    if (f.endsWith(".safetensors") || f === "model.safetensors.index.json") continue;
    copyFileSync(join(model.dir, f), join(outDir, f));
  }
  const byName = new Map(trained.map((t) => [t.name, t]));
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of model.weights.names()) {
    const shape = model.weights.shape(name);
    const t = byName.get(name);
    const values = t ? hfLayout(t, shape) : model.weights.get(name);
    tensors[name] = { dtype: "F32", shape, data: fromFloat32("F32", values) };
  }
  writeFileSync(join(outDir, "model.safetensors"), writeSafetensors(tensors, { format: "pt" }));
}
