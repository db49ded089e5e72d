// Weights of a Hugging Face model directory: `model.safetensors`, or shards listed by
// `model.safetensors.index.json` ({"weight_map": {tensor: file}}). Only headers are read up front; each
// tensor is read from its byte range when asked for, so a large model is never held twice.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { AppError } from "../../../src/errors.ts";
import { parseHeader, readHeaderLength, type TensorInfo, toFloat32 } from "../../../src/safetensors.ts";

const IndexSchema = z.looseObject({ weight_map: z.record(z.string(), z.string()) });

interface OpenFile {
  fd: number;
  dataOffset: number;
}

export interface SafetensorsDir {
  has(name: string): boolean;
  /** Shape as stored, e.g. [out, in] for a linear. */
  shape(name: string): number[];
  get(name: string): Float32Array;
  names(): string[];
  close(): void;
}

function readRange(fd: number, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0)
      throw new AppError("invalid_safetensors", `unexpected end of file at byte ${position + done}`);
    done += n;
  }
  return out;
}

function openShard(path: string): { file: OpenFile; tensors: TensorInfo[] } {
  const fd = openSync(path, "r");
  const size = fstatSync(fd).size;
  const headerLength = readHeaderLength(readRange(fd, 0, Math.min(8, size)), path);
  const header = parseHeader(readRange(fd, 0, 8 + headerLength), size, path);
  return { file: { fd, dataOffset: header.dataOffset }, tensors: header.tensors };
}

function shardFiles(dir: string): string[] {
  const indexPath = join(dir, "model.safetensors.index.json");
  if (existsSync(indexPath)) {
    const parsed = IndexSchema.safeParse(JSON.parse(readFileSync(indexPath, "utf8")));
    if (!parsed.success) {
      throw new AppError("invalid_model", `${indexPath}: weight_map must map tensor names to file names`);
    }
    return [...new Set(Object.values(parsed.data.weight_map))].sort();
  }
  if (existsSync(join(dir, "model.safetensors"))) return ["model.safetensors"];
  throw new AppError(
    "invalid_model",
    `${dir}: no weights found; expected model.safetensors or model.safetensors.index.json`,
  );
}

export function openSafetensorsDir(dir: string): SafetensorsDir {
  const where = new Map<string, { file: OpenFile; info: TensorInfo }>();
  const files: OpenFile[] = [];
  for (const shard of shardFiles(dir)) {
    const { file, tensors } = openShard(join(dir, shard));
    files.push(file);
    for (const info of tensors) where.set(info.name, { file, info });
  }
  const lookup = (name: string) => {
    const hit = where.get(name);
    if (!hit) throw new AppError("invalid_model", `${dir}: weights have no tensor "${name}"`);
    return hit;
  };
  return {
    has: (name) => where.has(name),
    shape: (name) => lookup(name).info.shape,
    get(name) {
      const { file, info } = lookup(name);
      const raw = readRange(file.fd, file.dataOffset + info.begin, info.end - info.begin);
      return toFloat32(info.dtype, raw, name);
    },
    names: () => [...where.keys()],
    close() {
      for (const f of files) closeSync(f.fd);
    },
  };
}
