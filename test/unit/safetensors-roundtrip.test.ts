import { describe, expect, it } from "vitest";
import {
  f16ToF32,
  f32ToF16,
  fromFloat32,
  readSafetensors,
  tensorBytes,
  toFloat32,
  writeSafetensors,
} from "../../src/safetensors.ts";

const values = new Float32Array([0, -0, 1, -1.5, 3.140625, 65504, 1e-3, -2.5e-5, 6.1e-5, 1e4]);

describe("safetensors round trip", () => {
  it("writes and reads F32 tensors and metadata exactly, header 8-byte aligned", () => {
    const bytes = writeSafetensors(
      {
        "b.weight": { dtype: "F32", shape: [2, 5], data: fromFloat32("F32", values) },
        a: { dtype: "F32", shape: [0], data: new Uint8Array() },
      },
      { format: "pt" },
    );
    const file = readSafetensors(bytes);
    expect(file.dataOffset % 8).toBe(0);
    expect(file.metadata).toEqual({ format: "pt" });
    const info = file.tensors.find((t) => t.name === "b.weight");
    if (!info) throw new Error("tensor missing");
    expect(info.shape).toEqual([2, 5]);
    expect(toFloat32("F32", tensorBytes(file, info))).toEqual(values);
  });

  it("round-trips values F16 represents exactly, and rounds others to nearest even", () => {
    const exact = new Float32Array([0, 1, -1.5, 3.140625, 65504, 2 ** -24, -(2 ** -14)]);
    expect(toFloat32("F16", fromFloat32("F16", exact))).toEqual(exact);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16(70000)).toBe(0x7c00);
    expect(f16ToF32(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(Number.isNaN(f16ToF32(f32ToF16(Number.NaN)))).toBe(true);
  });

  it("round-trips BF16 within its 8-bit mantissa, rounding to nearest even", () => {
    const decoded = toFloat32("BF16", fromFloat32("BF16", values));
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number;
      expect(Math.abs((decoded[i] as number) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8);
    }
    expect(toFloat32("BF16", fromFloat32("BF16", new Float32Array([1 + 2 ** -8])))[0]).toBe(1);
    expect(toFloat32("BF16", fromFloat32("BF16", new Float32Array([1 + 3 * 2 ** -8])))[0]).toBe(1 + 2 ** -6);
  });

  it("reads tensors at unaligned offsets", () => {
    const bytes = writeSafetensors({
      a: { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) },
      b: { dtype: "F32", shape: [2], data: fromFloat32("F32", new Float32Array([0.5, -2])) },
    });
    const file = readSafetensors(bytes);
    const b = file.tensors.find((t) => t.name === "b");
    if (!b) throw new Error("tensor missing");
    expect(b.begin).toBe(3);
    expect([...toFloat32("F32", tensorBytes(file, b))]).toEqual([0.5, -2]);
  });

  it("refuses to write data whose length disagrees with the shape", () => {
    expect(() => writeSafetensors({ a: { dtype: "F32", shape: [2], data: new Uint8Array(4) } })).toThrow(
      'tensor "a" F32[2] needs 8 bytes; got 4',
    );
  });
});
