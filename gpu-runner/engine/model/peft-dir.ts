// The one reader of PEFT adapter folders (adapter_config.json + adapter_model.safetensors), for the runner,
// the training runner and the publish script. A pickle-only folder is refused by name before anything is
// read; the weights are streamed (header and digest) unless the caller needs them whole.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { PEFT_CONFIG_FILE, PEFT_PICKLE_FILES, PEFT_WEIGHTS_FILE } from "../../../src/adapters/peft-files.ts";
import { refusePickle, validateAdapter } from "../../../src/adapters/validate.ts";
import { loadAdapterWeights } from "../../../src/adapters/weights.ts";
import type { BaseModelSpec } from "../../../src/contracts/base-model.ts";
import { AppError } from "../../../src/errors.ts";
import {
  parseHeader,
  readHeaderLength,
  readSafetensors,
  type SafetensorsHeader,
} from "../../../src/safetensors.ts";
import type { AdapterWeights } from "../types.ts";

/** A folder as publishing sees it: the config, and the weights' header and size, not their bytes. */
export interface PeftDir {
  config: Record<string, unknown>;
  weightsPath: string;
  sizeBytes: number;
  header: SafetensorsHeader;
}

/** The config and the whole weights file, for loading into the engine. */
export interface PeftFiles {
  config: Record<string, unknown>;
  weights: Uint8Array;
}

/** The weights' path; refuses a folder that has only pickled weights, or none. */
function weightsPathOf(dir: string): string {
  const weightsPath = join(dir, PEFT_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) {
    for (const pickle of PEFT_PICKLE_FILES) if (existsSync(join(dir, pickle))) refusePickle(pickle);
    throw new AppError(
      "invalid_adapter",
      `${weightsPath}: not found; a PEFT adapter directory has ${PEFT_WEIGHTS_FILE}`,
    );
  }
  return weightsPath;
}

function parseConfig(path: string, text: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new AppError("invalid_adapter", `${path}: not valid JSON (${(error as Error).message})`, {
      cause: error,
    });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new AppError("invalid_adapter", `${path}: must hold a JSON object`);
  }
  return json as Record<string, unknown>;
}

function configPathOf(dir: string): string {
  const path = join(dir, PEFT_CONFIG_FILE);
  if (!existsSync(path)) {
    throw new AppError(
      "invalid_adapter",
      `${path}: not found; a PEFT adapter directory has ${PEFT_CONFIG_FILE}`,
    );
  }
  return path;
}

async function readHeaderOf(path: string, sizeBytes: number): Promise<SafetensorsHeader> {
  const handle = await open(path, "r");
  try {
    const first = new Uint8Array(Math.min(8, sizeBytes));
    await handle.read(first, 0, first.length, 0);
    const prefix = new Uint8Array(Math.min(8 + readHeaderLength(first, PEFT_WEIGHTS_FILE), sizeBytes));
    await handle.read(prefix, 0, prefix.length, 0);
    return parseHeader(prefix, sizeBytes, PEFT_WEIGHTS_FILE);
  } finally {
    await handle.close();
  }
}

/** The config and the weights' header, streamed so a large file is never held in memory. */
export async function openPeftDir(dir: string): Promise<PeftDir> {
  const weightsPath = weightsPathOf(dir);
  const configPath = configPathOf(dir);
  const config = parseConfig(configPath, await readFile(configPath, "utf8"));
  const { size } = await stat(weightsPath);
  return { config, weightsPath, sizeBytes: size, header: await readHeaderOf(weightsPath, size) };
}

/**
 * Refuses a file that is not a regular file (a device or a pipe could be read forever) or that is larger than
 * `maxBytes`, by its size on disk, before any of it is read.
 */
async function checkReadable(path: string, maxBytes: number | undefined): Promise<void> {
  const info = await stat(path);
  if (!info.isFile()) {
    throw new AppError("invalid_adapter", `${path}: must be a regular file; got a ${describeKind(info)}`);
  }
  if (maxBytes !== undefined && info.size > maxBytes) {
    throw new AppError("payload_too_large", `${path}: must be <= ${maxBytes} bytes; got ${info.size}`);
  }
}

function describeKind(info: Awaited<ReturnType<typeof stat>>): string {
  if (info.isDirectory()) return "directory";
  if (info.isCharacterDevice() || info.isBlockDevice()) return "device";
  if (info.isFIFO()) return "pipe";
  if (info.isSocket()) return "socket";
  return "special file";
}

/** Bytes adapter_config.json may have: configs are a few KiB; this bounds what a hostile one costs. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * The config and the weights' bytes (the runner loads them into a slot). `maxBytes` bounds the weights file:
 * a larger one is refused with 413 before it is read.
 */
export async function readPeftFiles(dir: string, options: { maxBytes?: number } = {}): Promise<PeftFiles> {
  const weightsPath = weightsPathOf(dir);
  const configPath = configPathOf(dir);
  await checkReadable(configPath, MAX_CONFIG_BYTES);
  await checkReadable(weightsPath, options.maxBytes);
  const config = parseConfig(configPath, await readFile(configPath, "utf8"));
  const weights = await readFile(weightsPath);
  // the file may have grown since it was measured; what was read is checked again
  if (options.maxBytes !== undefined && weights.byteLength > options.maxBytes) {
    throw new AppError(
      "payload_too_large",
      `${weightsPath}: must be <= ${options.maxBytes} bytes; got more while it was read`,
    );
  }
  return { config, weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength) };
}

/** Validated engine weights, at once (benchmarks and training start from a folder). */
export function readPeftDir(dir: string, spec: BaseModelSpec, maxRank?: number): AdapterWeights {
  const weightsPath = weightsPathOf(dir);
  const configPath = configPathOf(dir);
  const config = parseConfig(configPath, readFileSync(configPath, "utf8"));
  const file = readSafetensors(new Uint8Array(readFileSync(weightsPath)), weightsPath);
  const validated = validateAdapter({ name: dir, config, header: file, spec, maxRank });
  return loadAdapterWeights(file, validated);
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
