// Reads a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) into engine weights,
// through the shared validation in src/adapters, so a directory is held to the same rules as an upload.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { refusePickle, validateAdapter } from "../../../src/adapters/validate.ts";
import { loadAdapterWeights } from "../../../src/adapters/weights.ts";
import type { BaseModelSpec } from "../../../src/contracts/base-model.ts";
import { AppError } from "../../../src/errors.ts";
import { readSafetensors } from "../../../src/safetensors.ts";
import type { AdapterWeights } from "../types.ts";

export function readPeftDir(dir: string, spec: BaseModelSpec, maxRank?: number): AdapterWeights {
  const path = join(dir, "adapter_model.safetensors");
  if (!existsSync(path) && existsSync(join(dir, "adapter_model.bin"))) refusePickle("adapter_model.bin");
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
  } catch (error) {
    throw new AppError(
      "invalid_adapter",
      `${dir}/adapter_config.json: cannot read JSON (${(error as Error).message})`,
    );
  }
  const file = readSafetensors(new Uint8Array(readFileSync(path)), path);
  const validated = validateAdapter({ name: dir, config, header: file, spec, maxRank });
  return loadAdapterWeights(file, validated);
}
