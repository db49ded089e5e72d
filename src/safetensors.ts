// safetensors reader and writer (huggingface/safetensors, "Format"): an 8-byte little-endian u64 header
// size N, N bytes of UTF-8 JSON, then the data buffer. Each tensor names its dtype, shape and
// [begin, end) offsets relative to the data buffer; the offsets must tile the buffer exactly.
import { AppError } from "./errors.ts";

export const SAFETENSORS_MAX_HEADER_BYTES = 100 * 1024 * 1024;

export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Offsets relative to the start of the data buffer. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Byte offset of the data buffer from the start of the file: 8 + header length. */
  dataOffset: number;
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** Length of the data buffer the header describes. */
  dataBytes: number;
}

function invalid(file: string, message: string): AppError {
  return new AppError("invalid_safetensors", `${file}: ${message}`);
}

/** Reads the header length from the first 8 bytes; refuses lengths over the limit. */
export function readHeaderLength(prefix: Uint8Array, file = "safetensors"): number {
  if (prefix.byteLength < 8) {
    throw invalid(
      file,
      `file is ${prefix.byteLength} bytes; a safetensors file starts with an 8-byte header size`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    throw invalid(file, `header size must be <= ${SAFETENSORS_MAX_HEADER_BYTES} bytes; got ${n}`);
  }
  if (n < 2n) throw invalid(file, `header size must be >= 2 bytes; got ${n}`);
  return Number(n);
}

/**
 * Parses a header from the file's first `8 + N` bytes. `fileBytes`, when known, checks that the data
 * buffer is exactly as long as the offsets say.
 */
export function parseHeader(prefix: Uint8Array, fileBytes?: number, file = "safetensors"): SafetensorsHeader {
  const headerLength = readHeaderLength(prefix, file);
  if (prefix.byteLength < 8 + headerLength) {
    throw invalid(
      file,
      `truncated: header says ${headerLength} bytes of JSON but only ${prefix.byteLength - 8} follow`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
      prefix.subarray(8, 8 + headerLength),
    );
  } catch {
    // The decoder's own TypeError would reach callers as a fault (a 500 at the edge): it is the file's.
    throw invalid(file, "header must be UTF-8 JSON; got bytes that are not valid UTF-8");
  }
  if (!text.startsWith("{")) throw invalid(file, "header JSON must start with '{'");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw invalid(file, `header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw invalid(file, "header must be a JSON object");
  }
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw invalid(file, "__metadata__ must be an object");
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw invalid(file, `__metadata__.${k} must be a string; got ${typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.push(parseTensorInfo(name, raw, file));
  }
  const dataBytes = checkOffsets(tensors, file);
  const dataOffset = 8 + headerLength;
  if (fileBytes !== undefined && fileBytes !== dataOffset + dataBytes) {
    const what = fileBytes < dataOffset + dataBytes ? "truncated" : "trailing bytes";
    throw invalid(
      file,
      `${what}: tensors need ${dataBytes} data bytes after the header; the file has ${fileBytes - dataOffset}`,
    );
  }
  return { dataOffset, tensors, metadata, dataBytes };
}

function parseTensorInfo(name: string, raw: unknown, file: string): TensorInfo {
  if (typeof raw !== "object" || raw === null) throw invalid(file, `tensor "${name}" must be an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
    throw invalid(file, `tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw invalid(
      file,
      `tensor "${name}" shape must be a list of non-negative integers; got ${JSON.stringify(shape)}`,
    );
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw invalid(
      file,
      `tensor "${name}" data_offsets must be [begin, end] with begin <= end; got ${JSON.stringify(offsets)}`,
    );
  }
  const info: TensorInfo = {
    name,
    dtype: dtype as Dtype,
    shape: shape as number[],
    begin: offsets[0],
    end: offsets[1],
  };
  const expected = info.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[info.dtype];
  if (info.end - info.begin !== expected) {
    throw invalid(
      file,
      `tensor "${name}" ${info.dtype}${JSON.stringify(info.shape)} needs ${expected} bytes; data_offsets span ${info.end - info.begin}`,
    );
  }
  return info;
}

/** Offsets must cover [0, total) exactly: no overlap, no hole. Returns the total. */
function checkOffsets(tensors: TensorInfo[], file: string): number {
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of sorted) {
    if (t.begin < cursor)
      throw invalid(
        file,
        `tensor "${t.name}" overlaps the previous tensor (begins at ${t.begin}, previous ends at ${cursor})`,
      );
    if (t.begin > cursor)
      throw invalid(file, `hole in data buffer: bytes ${cursor}..${t.begin} belong to no tensor`);
    cursor = t.end;
  }
  return cursor;
}

export interface SafetensorsFile extends SafetensorsHeader {
  bytes: Uint8Array;
}

/** Parses a whole in-memory file. */
export function readSafetensors(bytes: Uint8Array, file = "safetensors"): SafetensorsFile {
  const header = parseHeader(bytes, bytes.byteLength, file);
  return { ...header, bytes };
}

/** The raw bytes of one tensor (a view into the file). */
export function tensorBytes(file: SafetensorsFile, info: TensorInfo): Uint8Array {
  return file.bytes.subarray(file.dataOffset + info.begin, file.dataOffset + info.end);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half → float. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** float → IEEE half, round to nearest even. */
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}

/** Decodes a float tensor (F32, F16, BF16, F64) to a fresh Float32Array; copies, so alignment never matters. */
export function toFloat32(dtype: Dtype, raw: Uint8Array, name = "tensor"): Float32Array {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = raw.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  switch (dtype) {
    case "F32":
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
      return out;
    case "BF16":
      for (let i = 0; i < n; i++) {
        u32Scratch[0] = view.getUint16(i * 2, true) << 16;
        out[i] = f32Scratch[0] as number;
      }
      return out;
    case "F64":
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    default:
      throw new AppError(
        "invalid_safetensors",
        `${name}: dtype ${dtype} is not a float type (F32, F16, BF16, F64)`,
      );
  }
}

export interface TensorToWrite {
  dtype: Dtype;
  shape: number[];
  data: Uint8Array;
}

/** Encodes F32 values as the given float dtype's little-endian bytes. */
export function fromFloat32(dtype: "F32" | "F16" | "BF16", values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * DTYPE_BYTES[dtype]);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (dtype === "F32") view.setFloat32(i * 4, v, true);
    else if (dtype === "F16") view.setUint16(i * 2, f32ToF16(v), true);
    else {
      f32Scratch[0] = v;
      const bits = u32Scratch[0] as number;
      // round to nearest even on the dropped 16 bits (NaN stays NaN)
      const rounded = Number.isNaN(v) ? bits | 0x400000 : bits + 0x7fff + ((bits >>> 16) & 1);
      view.setUint16(i * 2, (rounded >>> 16) & 0xffff, true);
    }
  }
  return out;
}

/** Writes a safetensors file; tensors are laid out in name order, the header padded to 8 bytes. */
export function writeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name] as TensorToWrite;
    const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new AppError(
        "invalid_safetensors",
        `tensor "${name}" ${t.dtype}${JSON.stringify(t.shape)} needs ${expected} bytes; got ${t.data.byteLength}`,
      );
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = JSON.stringify(header);
  const encoder = new TextEncoder();
  let headerBytes = encoder.encode(json);
  const pad = (8 - (headerBytes.byteLength % 8)) % 8;
  if (pad) {
    json += " ".repeat(pad);
    headerBytes = encoder.encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let cursor = 8 + headerBytes.byteLength;
  for (const name of names) {
    const t = tensors[name] as TensorToWrite;
    out.set(t.data, cursor);
    cursor += t.data.byteLength;
  }
  return out;
}
