// The graph's building blocks (gpu-runner/engine/onnx/layers.ts), each run alone in onnxruntime and checked against
// the same math written in plain TypeScript, so a backward-graph emitter can trust them one by one.
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../gpu-runner/engine/onnx/graph-builder.ts";
import { linear, rmsNorm, rotary } from "../../gpu-runner/engine/onnx/layers.ts";
import { seededValues } from "../../scripts/bench/synthetic-model.ts";

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

async function run(g: GraphBuilder, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(g.toBytes());
  const out = await session.run(feeds);
  await session.release();
  return out.y?.data as Float32Array;
}

function expectClose(actual: Float32Array, expected: number[], tolerance = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  const worst = Math.max(...expected.map((e, i) => Math.abs((actual[i] as number) - e) / (1 + Math.abs(e))));
  expect(worst).toBeLessThan(tolerance);
}

describe("graph blocks against plain TypeScript", () => {
  it("rmsNorm: w * x / sqrt(mean(x²) + eps) over the last axis", async () => {
    const [rows, width, eps] = [3, 16, 1e-6];
    const x = seededValues(rng(1), rows * width, 0, 1);
    const w = seededValues(rng(2), width, 1, 0.2);
    const g = new GraphBuilder();
    const xi = g.input("x", "float32", [rows, width]);
    g.output(
      "y",
      rmsNorm(
        g,
        xi,
        g.initializer("w", "float32", [width], () => w),
        eps,
      ),
      "float32",
      [rows, width],
    );
    const expected: number[] = [];
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * width, (r + 1) * width));
      const inv = 1 / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / width + eps);
      expected.push(...row.map((v, i) => (w[i] as number) * v * inv));
    }
    expectClose(await run(g, { x: new ort.Tensor("float32", x, [rows, width]) }), expected);
  });

  it("rotary: x·cos + rotate_half(x)·sin, rotate_half = [-x2, x1]", async () => {
    const [t, heads, d] = [2, 3, 8];
    const x = seededValues(rng(3), t * heads * d, 0, 1);
    const cos = seededValues(rng(4), t * d, 0, 1);
    const sin = seededValues(rng(5), t * d, 0, 1);
    const g = new GraphBuilder();
    const xi = g.input("x", "float32", [1, t, heads, d]);
    const ci = g.input("cos", "float32", [1, t, 1, d]);
    const si = g.input("sin", "float32", [1, t, 1, d]);
    g.output("y", rotary(g, xi, ci, si, d), "float32", [1, t, heads, d]);
    const expected = Array.from(x, (v, idx) => {
      const [pos, i] = [Math.floor(idx / (heads * d)), idx % d];
      const base = idx - i;
      const rotated = i < d / 2 ? -(x[base + i + d / 2] as number) : (x[base + i - d / 2] as number);
      return v * (cos[pos * d + i] as number) + rotated * (sin[pos * d + i] as number);
    });
    const feeds = {
      x: new ort.Tensor("float32", x, [1, t, heads, d]),
      cos: new ort.Tensor("float32", cos, [1, t, 1, d]),
      sin: new ort.Tensor("float32", sin, [1, t, 1, d]),
    };
    expectClose(await run(g, feeds), expected);
  });

  it("linear with LoRA slots: each row gets x·Wᵀ + bias + (x·A[slot])·B[slot]; slot 0 adds nothing", async () => {
    const [inF, outF, rank, slots] = [6, 5, 2, 2];
    const x = seededValues(rng(6), 3 * inF, 0, 1); // [B=3, T=1, in]
    const wT = seededValues(rng(7), inF * outF, 0, 1); // [in, out]
    const bias = seededValues(rng(8), outF, 0, 1);
    const a = seededValues(rng(9), (slots + 1) * inF * rank, 0, 1); // [S+1, in, R]
    const b = seededValues(rng(10), (slots + 1) * rank * outF, 0, 1); // [S+1, R, out]
    a.fill(0, 0, inF * rank);
    b.fill(0, 0, rank * outF);
    const slotIds = [2, 0, 1];
    const g = new GraphBuilder();
    const xi = g.input("x", "float32", [3, 1, inF]);
    const tensors = {
      weightT: g.initializer("wT", "float32", [inF, outF], () => wT),
      bias: g.initializer("bias", "float32", [outF], () => bias),
      lora: {
        a: g.input("a", "float32", [slots + 1, inF, rank]),
        b: g.input("b", "float32", [slots + 1, rank, outF]),
      },
    };
    g.output("y", linear(g, xi, tensors, g.input("slots", "int64", [3])), "float32", [3, 1, outF]);
    const expected: number[] = [];
    for (const [row, s] of slotIds.entries()) {
      const xr = Array.from(x.subarray(row * inF, (row + 1) * inF));
      const xa = Array.from({ length: rank }, (_, j) =>
        xr.reduce((acc, v, i) => acc + v * (a[(s * inF + i) * rank + j] as number), 0),
      );
      for (let o = 0; o < outF; o++) {
        const base = xr.reduce((acc, v, i) => acc + v * (wT[i * outF + o] as number), bias[o] as number);
        expected.push(base + xa.reduce((acc, v, j) => acc + v * (b[(s * rank + j) * outF + o] as number), 0));
      }
    }
    const feeds = {
      x: new ort.Tensor("float32", x, [3, 1, inF]),
      a: new ort.Tensor("float32", a, [slots + 1, inF, rank]),
      b: new ort.Tensor("float32", b, [slots + 1, rank, outF]),
      slots: new ort.Tensor("int64", BigInt64Array.from(slotIds, BigInt), [3]),
    };
    expectClose(await run(g, feeds), expected);
  });
});
