// Property-based fuzzing of the safetensors reader (fast-check): whatever bytes arrive, the reader either
// returns a header whose tensors tile the data buffer exactly, or refuses with invalid_safetensors naming the
// file. It never throws anything else: any other error would be a 500 at the edge and a crash in a runner's
// cold load. Inputs: random bytes, well-formed files with random tensors, and those files with their
// length field, header JSON and tensor entries mutated.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/errors.ts";
import {
  DTYPE_BYTES,
  type Dtype,
  parseHeader,
  readSafetensors,
  type SafetensorsHeader,
  type TensorToWrite,
  writeSafetensors,
} from "../../src/safetensors.ts";

const FILE = "adapter_model.safetensors";
const DTYPES = Object.keys(DTYPE_BYTES) as Dtype[];

/** The reader's whole contract on one input: a checked header, or a refusal of the kind callers map to 400. */
function readOrRefuse(
  bytes: Uint8Array,
  fileBytes: number | undefined = bytes.byteLength,
): SafetensorsHeader | null {
  try {
    const header = parseHeader(bytes, fileBytes, FILE);
    let cursor = 0;
    for (const t of [...header.tensors].sort((a, b) => a.begin - b.begin)) {
      expect(t.begin).toBe(cursor);
      expect(t.end - t.begin).toBe(t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype]);
      cursor = t.end;
    }
    expect(header.dataBytes).toBe(cursor);
    if (fileBytes !== undefined) expect(header.dataOffset + header.dataBytes).toBe(fileBytes);
    return header;
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    expect(error.code).toBe("invalid_safetensors");
    expect(error.message.startsWith(`${FILE}: `)).toBe(true);
    return null;
  }
}

const tensorArb = fc.record({
  dtype: fc.constantFrom(...DTYPES),
  shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
});

const filesArb = fc
  .dictionary(fc.string({ minLength: 1, maxLength: 12 }), tensorArb, { maxKeys: 5 })
  .filter((tensors) => !("__metadata__" in tensors))
  .map((tensors) => {
    const files: Record<string, TensorToWrite> = {};
    for (const [name, t] of Object.entries(tensors)) {
      const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
      files[name] = { ...t, data: new Uint8Array(bytes).map((_, i) => i * 31) };
    }
    return files;
  });

/** Hand-assembled: 8-byte length (declared or true), header text, data bytes. */
function assemble(header: string, dataBytes: number, declared?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

/** Values a hostile header puts where numbers, lists and strings belong. */
const oddValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    -1,
    0.5,
    2 ** 53,
    2 ** 64,
    1e308,
    -0,
    "F32",
    "__proto__",
    [0, -1],
    [1, 0],
    [0, 2 ** 60],
    [2 ** 31, 2 ** 31],
    [[1]],
    {},
    null,
  ),
);

const entryArb = fc.record(
  {
    dtype: fc.oneof(fc.constantFrom(...DTYPES), oddValue),
    shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 2 ** 33 }), { maxLength: 4 }), oddValue),
    data_offsets: fc.oneof(
      fc.tuple(fc.integer({ min: -4, max: 4096 }), fc.integer({ min: -4, max: 4096 })),
      oddValue,
    ),
  },
  { requiredKeys: [] },
);

const headerArb = fc.dictionary(
  fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("__metadata__", "__proto__", "constructor")),
  fc.oneof(entryArb, oddValue, fc.dictionary(fc.string({ maxLength: 4 }), oddValue, { maxKeys: 3 })),
  { maxKeys: 5 },
);

describe("the safetensors reader, fuzzed", () => {
  it("reads back every well-formed file it writes, tensor for tensor", () => {
    fc.assert(
      fc.property(filesArb, (files) => {
        const read = readSafetensors(writeSafetensors(files), FILE);
        expect(read.tensors.map((t) => t.name).sort()).toEqual(Object.keys(files).sort());
        for (const t of read.tensors) {
          expect(t.dtype).toBe(files[t.name]?.dtype);
          expect(t.shape).toEqual(files[t.name]?.shape);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("refuses by name, never crashes, on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        readOrRefuse(bytes);
      }),
      { numRuns: 1_000 },
    );
  });

  it("refuses by name, never crashes, on hostile headers of any shape, length field and file size", () => {
    fc.assert(
      fc.property(
        headerArb,
        fc.integer({ min: 0, max: 4096 }),
        fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { freq: 4 }),
        fc.option(fc.integer({ min: 0, max: 10_000 }), { freq: 2 }),
        (header, dataBytes, declared, fileBytes) => {
          const bytes = assemble(JSON.stringify(header), dataBytes, declared ?? undefined);
          readOrRefuse(bytes, fileBytes ?? bytes.byteLength);
        },
      ),
      { numRuns: 1_500 },
    );
  });

  it("refuses by name, never crashes, on well-formed files with bytes flipped, cut or appended", () => {
    fc.assert(
      fc.property(
        filesArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.option(fc.nat(), { freq: 3 }),
        fc.uint8Array({ maxLength: 8 }),
        (files, flips, cut, tail) => {
          let bytes = writeSafetensors(files);
          for (const [at, value] of flips) bytes[at % bytes.byteLength] = value;
          if (cut !== null) bytes = bytes.subarray(0, cut % (bytes.byteLength + 1));
          const out = new Uint8Array(bytes.byteLength + tail.byteLength);
          out.set(bytes);
          out.set(tail, bytes.byteLength);
          readOrRefuse(out);
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it("refuses a header that is not UTF-8 as invalid_safetensors, not as a decoder error", () => {
    const bytes = assemble("{}", 0);
    bytes[8] = 0xff;
    bytes[9] = 0xfe;
    expect(readOrRefuse(bytes)).toBeNull();
    expect(() => parseHeader(bytes, bytes.byteLength, FILE)).toThrow(
      `${FILE}: header must be UTF-8 JSON; got bytes that are not valid UTF-8`,
    );
  });
});
