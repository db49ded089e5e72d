// One helper per standard ONNX op (opset 17, default domain), so that graph code reads like the model's
// math and a backward-graph emitter can reuse the same vocabulary. Each returns its output's name.
import type { GraphBuilder } from "./graph-builder.ts";

type G = GraphBuilder;

export const matMul = (g: G, a: string, b: string) => g.op("MatMul", [a, b]);
export const add = (g: G, a: string, b: string) => g.op("Add", [a, b]);
export const sub = (g: G, a: string, b: string) => g.op("Sub", [a, b]);
export const mul = (g: G, a: string, b: string) => g.op("Mul", [a, b]);
export const div = (g: G, a: string, b: string) => g.op("Div", [a, b]);
export const neg = (g: G, x: string) => g.op("Neg", [x]);
export const sqrt = (g: G, x: string) => g.op("Sqrt", [x]);
export const reciprocal = (g: G, x: string) => g.op("Reciprocal", [x]);
export const sigmoid = (g: G, x: string) => g.op("Sigmoid", [x]);
export const tanh = (g: G, x: string) => g.op("Tanh", [x]);

/** Softmax over one axis (opset >= 13 semantics, not the flattened 2-D of older opsets). */
export const softmax = (g: G, x: string, axis: number) => g.op("Softmax", [x], { axis: { i: axis } });

/** ReduceMean keeps `axes` as an attribute up to opset 17. */
export const reduceMean = (g: G, x: string, axes: number[], keepdims = true) =>
  g.op("ReduceMean", [x], { axes: { ints: axes }, keepdims: { i: keepdims ? 1 : 0 } });

/** Reshape where 0 copies the input's dim and -1 is inferred. */
export const reshape = (g: G, x: string, shape: number[]) => g.op("Reshape", [x, g.constant("int64", shape)]);

export const transpose = (g: G, x: string, perm: number[]) =>
  g.op("Transpose", [x], { perm: { ints: perm } });

export const concat = (g: G, xs: string[], axis: number) => g.op("Concat", xs, { axis: { i: axis } });

export const unsqueeze = (g: G, x: string, axes: number[]) =>
  g.op("Unsqueeze", [x, g.constant("int64", axes)]);

export const slice = (g: G, x: string, starts: number[], ends: number[], axes: number[]) =>
  g.op("Slice", [x, g.constant("int64", starts), g.constant("int64", ends), g.constant("int64", axes)]);

export const gather = (g: G, data: string, indices: string, axis = 0) =>
  g.op("Gather", [data, indices], { axis: { i: axis } });

/** y = alpha * A' * B' (+ C), where ' is an optional transpose: the output head reads [vocab, hidden] as is. */
export const gemm = (g: G, a: string, b: string, transB: boolean) =>
  g.op("Gemm", [a, b], { transB: { i: transB ? 1 : 0 } });

export const cast = (g: G, x: string, to: number) => g.op("Cast", [x], { to: { i: to } });

export const scalar = (g: G, value: number) => g.constant("float32", [value], []);

/** Largest int64, the "to the end" bound of Slice. */
export const SLICE_END = 2 ** 62;
