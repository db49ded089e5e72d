// Every backward rule against central finite differences (gpu-runner/training/grad-check.ts), on small
// shapes that exercise broadcasting, batching and repeated indices.
import { describe, expect, it } from "vitest";
import type { GraphBuilder } from "../../gpu-runner/engine/onnx/graph-builder.ts";
import { rmsNorm, rotary } from "../../gpu-runner/engine/onnx/layers.ts";
import * as op from "../../gpu-runner/engine/onnx/ops.ts";
import { GRAD_RULES, type GradRule, reduceSum } from "../../gpu-runner/training/grad-rules.ts";
import { type CheckInput, gradCheck } from "../../gpu-runner/training/grad-check.ts";
import { createRng } from "../../src/random.ts";

const rng = createRng(7);
const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
const normal = (name: string, dims: number[]): CheckInput => ({
  name,
  dims,
  data: Float32Array.from({ length: size(dims) }, () => rng.nextNormal()),
});
const positive = (name: string, dims: number[]): CheckInput => ({
  name,
  dims,
  data: Float32Array.from({ length: size(dims) }, () => 0.5 + Math.abs(rng.nextNormal())),
});
const ids = (name: string, dims: number[], values: number[]): CheckInput => ({
  name,
  dims,
  data: BigInt64Array.from(values, BigInt),
});

type Case = [string, CheckInput[], (g: GraphBuilder) => string];

const cases: Case[] = [
  ["Add broadcasts a bias", [normal("a", [2, 3, 4]), normal("b", [4])], (g) => op.add(g, "a", "b")],
  [
    "Sub broadcasts a middle axis",
    [normal("a", [2, 3, 4]), normal("b", [2, 1, 4])],
    (g) => op.sub(g, "a", "b"),
  ],
  ["Mul by a scalar input", [normal("a", [3, 4]), normal("b", [1])], (g) => op.mul(g, "a", "b")],
  ["Div", [normal("a", [2, 3]), positive("b", [2, 3])], (g) => op.div(g, "a", "b")],
  ["Neg", [normal("a", [5])], (g) => op.neg(g, "a")],
  ["Sqrt", [positive("a", [2, 3])], (g) => op.sqrt(g, "a")],
  ["Reciprocal", [positive("a", [2, 3])], (g) => op.reciprocal(g, "a")],
  ["Sigmoid", [normal("a", [2, 3])], (g) => op.sigmoid(g, "a")],
  ["Exp", [normal("a", [2, 3])], (g) => g.op("Exp", ["a"])],
  ["Log", [positive("a", [2, 3])], (g) => g.op("Log", ["a"])],
  ["Softmax", [normal("a", [2, 3, 5])], (g) => op.softmax(g, "a", -1)],
  ["LogSoftmax", [normal("a", [4, 7])], (g) => g.op("LogSoftmax", ["a"], { axis: { i: 1 } })],
  ["MatMul by a weight", [normal("a", [2, 3, 4]), normal("b", [4, 5])], (g) => op.matMul(g, "a", "b")],
  ["MatMul batched", [normal("a", [2, 3, 4, 5]), normal("b", [2, 3, 5, 2])], (g) => op.matMul(g, "a", "b")],
  [
    "MatMul broadcast batch",
    [normal("a", [2, 1, 3, 4]), normal("b", [1, 2, 4, 5])],
    (g) => op.matMul(g, "a", "b"),
  ],
  ["ReduceMean keepdims", [normal("a", [2, 3, 4])], (g) => op.reduceMean(g, "a", [-1])],
  ["ReduceMean dropping axes", [normal("a", [2, 3, 4])], (g) => op.reduceMean(g, "a", [0, 2], false)],
  ["ReduceSum", [normal("a", [2, 3, 4])], (g) => reduceSum(g, "a", [1], false)],
  ["Reshape", [normal("a", [2, 3, 4])], (g) => op.reshape(g, "a", [0, -1, 2])],
  ["Transpose", [normal("a", [2, 3, 4])], (g) => op.transpose(g, "a", [2, 0, 1])],
  ["Concat", [normal("a", [2, 3]), normal("b", [2, 2])], (g) => op.concat(g, ["a", "b"], 1)],
  ["Unsqueeze", [normal("a", [2, 3])], (g) => op.unsqueeze(g, "a", [1])],
  ["Slice a middle range", [normal("a", [2, 6])], (g) => op.slice(g, "a", [1], [4], [-1])],
  ["Slice to the end", [normal("a", [3, 6])], (g) => op.slice(g, "a", [-2], [op.SLICE_END], [0])],
  ["Tile", [normal("a", [2, 1, 3])], (g) => g.op("Tile", ["a", g.constant("int64", [1, 3, 2])])],
  ["Expand", [normal("a", [3, 1])], (g) => g.op("Expand", ["a", g.constant("int64", [2, 3, 4])])],
  [
    "Split, one part unused",
    [normal("a", [2, 5])],
    (g) => g.node("Split", ["a", g.constant("int64", [2, 3])], { axis: { i: 1 } }, 2)[1] as string,
  ],
  [
    "Gather rows, one picked twice",
    [normal("w", [5, 3]), ids("i", [2, 2], [4, 1, 4, 0])],
    (g) => op.gather(g, "w", "i"),
  ],
  [
    "GatherElements",
    [normal("a", [3, 4]), ids("i", [3, 1], [2, 0, 3])],
    (g) => g.op("GatherElements", ["a", "i"], { axis: { i: 1 } }),
  ],
  ["RMSNorm (layers.ts)", [normal("x", [2, 3, 8]), positive("w", [8])], (g) => rmsNorm(g, "x", "w", 1e-6)],
  [
    "rotary (layers.ts)",
    [normal("x", [1, 3, 2, 4]), normal("c", [1, 3, 1, 4]), normal("s", [1, 3, 1, 4])],
    (g) => rotary(g, "x", "c", "s", 4),
  ],
];

describe("each op's backward matches finite differences", () => {
  it.each(cases)("%s", async (_name, inputs, build) => {
    const result = await gradCheck({ inputs, build });
    expect(result.comparisons).toBeGreaterThanOrEqual(4);
    expect(result.maxRelError).toBeLessThan(1e-2);
  });

  it.each([
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ])("Gemm transA=%s transB=%s", async (ta, tb) => {
    const a = normal("a", ta ? [4, 3] : [3, 4]);
    const b = normal("b", tb ? [5, 4] : [4, 5]);
    const build = (g: GraphBuilder) =>
      g.op("Gemm", ["a", "b"], { transA: { i: ta ? 1 : 0 }, transB: { i: tb ? 1 : 0 } });
    const result = await gradCheck({ inputs: [a, b], build });
    expect(result.maxRelError).toBeLessThan(1e-2);
  });

  it("a wrong rule is caught: the check is not vacuous", async () => {
    const x = normal("a", [6]);
    const right = GRAD_RULES.Sigmoid as GradRule;
    // Sigmoid's gradient passed through unchanged (as if it were Identity) must fail the check.
    GRAD_RULES.Sigmoid = (_c, _n, dy) => [dy[0] as string];
    try {
      const wrong = await gradCheck({ inputs: [x], build: (g) => op.sigmoid(g, "a") });
      expect(wrong.maxRelError).toBeGreaterThan(0.5);
    } finally {
      GRAD_RULES.Sigmoid = right;
    }
  });
});
