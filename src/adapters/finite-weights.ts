// Finds NaN and ±Inf in an adapter's weights, so they are refused before an adapter is published or loaded:
// one such value turns every output of every request that uses the adapter into NaN. Reads the IEEE bit
// patterns (an all-ones exponent) instead of decoding, and takes the file in chunks of any size, so a caller
// can scan a large file as it streams it from disk. It never judges anything but float values.
import {
  DTYPE_BYTES,
  type Dtype,
  type SafetensorsFile,
  type SafetensorsHeader,
  toFloat32,
} from "../safetensors.ts";

type NonFiniteAt = (view: DataView, at: number) => boolean;

const NON_FINITE: Partial<Record<Dtype, NonFiniteAt>> = {
  F64: (view, at) => (view.getUint32(at + 4, true) & 0x7ff00000) === 0x7ff00000,
  F32: (view, at) => (view.getUint32(at, true) & 0x7f800000) === 0x7f800000,
  F16: (view, at) => (view.getUint16(at, true) & 0x7c00) === 0x7c00,
  BF16: (view, at) => (view.getUint16(at, true) & 0x7f80) === 0x7f80,
};

interface Scanned {
  name: string;
  dtype: Dtype;
  size: number;
  test: NonFiniteAt;
  /** Absolute byte offsets in the file. */
  start: number;
  end: number;
  bad: { index: number; value: number } | null;
}

/** Scans a safetensors file's float tensors, fed in file order from byte 0, in chunks of any size. */
export class NonFiniteScan {
  readonly #tensors: Scanned[];
  #next = 0;
  #offset = 0;
  /** The bytes of an element split across two chunks. */
  readonly #carry = new Uint8Array(8);
  readonly #carryView = new DataView(this.#carry.buffer);
  #carried = 0;

  constructor(header: SafetensorsHeader) {
    const tensors: Scanned[] = [];
    for (const t of header.tensors) {
      const test = NON_FINITE[t.dtype];
      if (test === undefined || t.end === t.begin) continue;
      const start = header.dataOffset + t.begin;
      const end = header.dataOffset + t.end;
      tensors.push({ name: t.name, dtype: t.dtype, size: DTYPE_BYTES[t.dtype], test, start, end, bad: null });
    }
    this.#tensors = tensors.sort((a, b) => a.start - b.start);
  }

  push(chunk: Uint8Array): void {
    const chunkStart = this.#offset;
    const chunkEnd = chunkStart + chunk.byteLength;
    this.#offset = chunkEnd;
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (this.#next < this.#tensors.length) {
      const t = this.#tensors[this.#next] as Scanned;
      if (t.start >= chunkEnd) return;
      const from = Math.max(t.start, chunkStart);
      const to = Math.min(t.end, chunkEnd);
      if (from < to && t.bad === null) this.#scan(t, chunk, view, chunkStart, from, to);
      if (t.end > chunkEnd) return;
      this.#next++;
      this.#carried = 0;
    }
  }

  #scan(t: Scanned, chunk: Uint8Array, view: DataView, chunkStart: number, from: number, to: number): void {
    let at = from;
    if (this.#carried > 0) {
      const take = Math.min(t.size - this.#carried, to - at);
      this.#carry.set(chunk.subarray(at - chunkStart, at - chunkStart + take), this.#carried);
      this.#carried += take;
      at += take;
      if (this.#carried < t.size) return;
      this.#carried = 0;
      if (t.test(this.#carryView, 0)) {
        t.bad = { index: (at - t.size - t.start) / t.size, value: decodedAt(t.dtype, this.#carry) };
        return;
      }
    }
    for (; at + t.size <= to; at += t.size) {
      if (t.test(view, at - chunkStart)) {
        const bytes = chunk.subarray(at - chunkStart, at - chunkStart + t.size);
        t.bad = { index: (at - t.start) / t.size, value: decodedAt(t.dtype, bytes) };
        return;
      }
    }
    if (at < to) {
      this.#carry.set(chunk.subarray(at - chunkStart, to - chunkStart), 0);
      this.#carried = to - at;
    }
  }

  /** One line per tensor holding a non-finite value: the tensor, the rule, the first bad value and its index. */
  problems(): string[] {
    return this.#tensors
      .filter((t) => t.bad !== null)
      .map(
        (t) =>
          `tensor "${t.name}" must hold only finite values; got ${t.bad?.value} at index ${t.bad?.index}`,
      );
  }
}

function decodedAt(dtype: Dtype, bytes: Uint8Array): number {
  return toFloat32(dtype, bytes.slice(0, DTYPE_BYTES[dtype]))[0] as number;
}

/** The non-finite problems of a file held in memory. */
export function nonFiniteProblems(file: SafetensorsFile): string[] {
  const scan = new NonFiniteScan(file);
  scan.push(file.bytes);
  return scan.problems();
}

/** The non-finite problems of a file read as a stream of chunks from byte 0 (a file on disk, an R2 body). */
export async function nonFiniteProblemsOf(
  header: SafetensorsHeader,
  chunks: AsyncIterable<Uint8Array>,
): Promise<string[]> {
  const scan = new NonFiniteScan(header);
  for await (const chunk of chunks) scan.push(chunk);
  return scan.problems();
}
