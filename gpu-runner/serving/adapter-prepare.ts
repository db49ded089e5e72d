// Turns uploaded or on-disk PEFT bytes into engine weights, through the shared validation in src/adapters
// (the same rules the edge applies at publish time), and computes the content id the cache keys on.
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { adapterId, refusePickle, validateAdapter } from "../../src/adapters/validate.ts";
import { loadAdapterWeights } from "../../src/adapters/weights.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { AppError } from "../../src/errors.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import type { PrepareAdapter } from "./adapters.ts";

export function createPrepareAdapter(spec: BaseModelSpec, maxRank: number): PrepareAdapter {
  return async ({ config, weights, label, weightsSha256 }) => {
    const file = readSafetensors(weights, `${label} adapter_model.safetensors`);
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

async function readOrExplain(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new AppError(
      "invalid_adapter",
      `${what}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      {
        param: "lora_path",
      },
    );
  }
}

/** Reads adapter_config.json + adapter_model.safetensors; a pickle-only directory is refused unread. */
export async function readAdapterDir(dir: string): Promise<{ config: unknown; weights: Uint8Array }> {
  const weightsPath = join(dir, "adapter_model.safetensors");
  const weights = await readFile(weightsPath).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") {
      const legacy = await access(join(dir, "adapter_model.bin")).then(
        () => true,
        () => false,
      );
      if (legacy) refusePickle("adapter_model.bin");
    }
    return readOrExplain(weightsPath, "adapter weights");
  });
  const configText = (await readOrExplain(join(dir, "adapter_config.json"), "adapter config")).toString(
    "utf8",
  );
  let config: unknown;
  try {
    config = JSON.parse(configText);
  } catch (error) {
    throw new AppError(
      "invalid_adapter",
      `${dir}/adapter_config.json: not JSON (${(error as Error).message})`,
      {
        param: "lora_path",
      },
    );
  }
  return { config, weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength) };
}
