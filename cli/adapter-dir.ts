// Reads a PEFT adapter directory the way the edge will see it: adapter_config.json, and the header and
// digest of adapter_model.safetensors, streamed so a large file is never held in memory.
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { refusePickle } from "../src/adapters/validate.ts";
import { AppError } from "../src/errors.ts";
import { parseHeader, readHeaderLength, type SafetensorsHeader } from "../src/safetensors.ts";

export const CONFIG_FILE = "adapter_config.json";
export const WEIGHTS_FILE = "adapter_model.safetensors";
const PICKLES = ["adapter_model.bin", "adapter_model.pt", "adapter_model.pth"];

export interface AdapterDir {
  config: Record<string, unknown>;
  weightsPath: string;
  sizeBytes: number;
  header: SafetensorsHeader;
}

async function readConfig(dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path))
    throw new AppError("invalid_adapter", `${path}: not found; a PEFT adapter directory has ${CONFIG_FILE}`);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new AppError("invalid_adapter", `${path}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new AppError("invalid_adapter", `${path}: must hold a JSON object`);
  }
  return json as Record<string, unknown>;
}

async function readHeaderOf(path: string, sizeBytes: number): Promise<SafetensorsHeader> {
  const handle = await open(path, "r");
  try {
    const first = new Uint8Array(Math.min(8, sizeBytes));
    await handle.read(first, 0, first.length, 0);
    const prefix = new Uint8Array(Math.min(8 + readHeaderLength(first, WEIGHTS_FILE), sizeBytes));
    await handle.read(prefix, 0, prefix.length, 0);
    return parseHeader(prefix, sizeBytes, WEIGHTS_FILE);
  } finally {
    await handle.close();
  }
}

export async function readAdapterDir(dir: string): Promise<AdapterDir> {
  const weightsPath = join(dir, WEIGHTS_FILE);
  if (!existsSync(weightsPath)) {
    for (const pickle of PICKLES) if (existsSync(join(dir, pickle))) refusePickle(pickle);
    throw new AppError(
      "invalid_adapter",
      `${weightsPath}: not found; a PEFT adapter directory has ${WEIGHTS_FILE}`,
    );
  }
  const config = await readConfig(dir);
  const { size } = await stat(weightsPath);
  return { config, weightsPath, sizeBytes: size, header: await readHeaderOf(weightsPath, size) };
}

export async function sha256File(path: string, onProgress?: (bytes: number) => void): Promise<string> {
  const hash = createHash("sha256");
  let done = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    done += (chunk as Buffer).length;
    onProgress?.(done);
  }
  return hash.digest("hex");
}
