import { describe, expect, it } from "vitest";
import { loraLinear, mergeLora } from "../../src/adapters/lora-reference.ts";
import { seededRandom } from "../helpers/peft-files.ts";

function randoms(seed: number, n: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: n }, () => random() * 2 - 1);
}

describe("loraLinear", () => {
  it("computes x·Wᵀ + s·(x·Aᵀ)·Bᵀ + bias on a hand-checked case", () => {
    // x: [1, 2], W: [2, 2] = I, A: [1, 2] = [1, 1], B: [2, 1] = [2, -1], s = 0.5, bias [10, 20]
    const y = loraLinear(
      new Float32Array([3, 4]),
      new Float32Array([1, 0, 0, 1]),
      new Float32Array([1, 1]),
      new Float32Array([2, -1]),
      0.5,
      new Float32Array([10, 20]),
    );
    expect([...y]).toEqual([3 + 0.5 * 7 * 2 + 10, 4 + 0.5 * 7 * -1 + 20]);
  });

  it.each([
    [1, 1],
    [4, 2],
    [16, 3],
  ])("equals x·(W + s·B·A)ᵀ, i.e. PEFT's merge, at rank %i (seed %i)", (r, seed) => {
    const [n, inF, out, s] = [3, 24, 40, 1.75];
    const x = randoms(seed, n * inF);
    const w = randoms(seed + 10, out * inF);
    const a = randoms(seed + 20, r * inF);
    const b = randoms(seed + 30, out * r);
    const y = loraLinear(x, w, a, b, s);
    const merged = loraLinear(x, mergeLora(w, a, b, s), new Float32Array(inF), new Float32Array(out), 0);
    expect(y).toHaveLength(n * out);
    for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(merged[i] as number, 4);
  });

  it("reduces to the base linear when B is zero", () => {
    const x = randoms(1, 2 * 8);
    const w = randoms(2, 5 * 8);
    const y = loraLinear(x, w, randoms(3, 2 * 8), new Float32Array(5 * 2), 3);
    const base = loraLinear(x, w, new Float32Array(8), new Float32Array(5), 0);
    expect(y).toEqual(base);
  });

  it("refuses buffers whose lengths fit no shapes", () => {
    expect(() =>
      loraLinear(new Float32Array(5), new Float32Array(12), new Float32Array(8), new Float32Array(6), 1),
    ).toThrow(RangeError);
  });
});
