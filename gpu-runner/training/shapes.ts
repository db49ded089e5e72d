// Static shape inference over a GraphBuilder's nodes. Training graphs are built for one fixed [batch, seq]
// (sequences are padded to a length bucket), so every value has a known shape; the backward pass needs them
// to undo broadcasting, pad slices back and split concatenations.
import { AppError } from "../../src/errors.ts";
import type { GraphBuilder } from "../engine/onnx/graph-builder.ts";
import type { AttrValue, NodeDef } from "../engine/onnx/onnx-proto.ts";

export type Shape = number[];

export interface ShapeContext {
  shape(name: string): Shape;
  /** Values of a small int64 constant (shapes, axes, starts), read from the graph's initializers. */
  ints(name: string): number[];
}

export const attrInt = (node: NodeDef, key: string, fallback: number): number => {
  const a: AttrValue | undefined = node.attrs[key];
  return a && "i" in a ? a.i : fallback;
};

export const attrInts = (node: NodeDef, key: string): number[] | null => {
  const a: AttrValue | undefined = node.attrs[key];
  return a && "ints" in a ? a.ints : null;
};

export const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

export const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

export function broadcast(a: Shape, b: Shape): Shape {
  const rank = Math.max(a.length, b.length);
  const out: Shape = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`cannot broadcast [${a}] with [${b}]`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

function reshapeTo(input: Shape, target: number[]): Shape {
  const out = target.map((d, i) => (d === 0 ? (input[i] as number) : d));
  const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  return out.map((d) => (d === -1 ? numel(input) / known : d));
}

function matMulShape(a: Shape, b: Shape): Shape {
  const batch = broadcast(a.slice(0, -2), b.slice(0, -2));
  return [...batch, a[a.length - 2] as number, b[b.length - 1] as number];
}

function sliceShape(input: Shape, c: ShapeContext, node: NodeDef): Shape {
  const [, s, e, ax] = node.inputs as [string, string, string, string];
  const starts = c.ints(s);
  const ends = c.ints(e);
  const out = [...input];
  c.ints(ax).forEach((axis, i) => {
    const r = sliceRange(
      input[normAxis(axis, input.length)] as number,
      starts[i] as number,
      ends[i] as number,
    );
    out[normAxis(axis, input.length)] = r.end - r.start;
  });
  return out;
}

/** ONNX Slice's clamping of one axis (step 1). */
export function sliceRange(dim: number, start: number, end: number): { start: number; end: number } {
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
  return { start: clamp(start), end: Math.max(clamp(end), clamp(start)) };
}

function reduceShape(input: Shape, axes: number[] | null, keep: boolean): Shape {
  const all = axes === null || axes.length === 0;
  const set = new Set((axes ?? []).map((a) => normAxis(a, input.length)));
  const out: Shape = [];
  input.forEach((d, i) => {
    if (all || set.has(i)) {
      if (keep) out.push(1);
    } else out.push(d);
  });
  return out;
}

type Infer = (node: NodeDef, c: ShapeContext, x: Shape[]) => Shape[];

const same: Infer = (_n, _c, x) => [x[0] as Shape];
const binary: Infer = (_n, _c, x) => [broadcast(x[0] as Shape, x[1] as Shape)];

const RULES: Record<string, Infer> = {
  Add: binary,
  Sub: binary,
  Mul: binary,
  Div: binary,
  Neg: same,
  Sqrt: same,
  Reciprocal: same,
  Sigmoid: same,
  Tanh: same,
  Exp: same,
  Log: same,
  Softmax: same,
  LogSoftmax: same,
  Cast: same,
  Identity: same,
  MatMul: (_n, _c, x) => [matMulShape(x[0] as Shape, x[1] as Shape)],
  Gemm: (n, _c, [a, b]) => {
    const m = attrInt(n, "transA", 0) ? (a as Shape)[1] : (a as Shape)[0];
    const k = attrInt(n, "transB", 0) ? (b as Shape)[0] : (b as Shape)[1];
    return [[m as number, k as number]];
  },
  ReduceMean: (n, _c, x) => [
    reduceShape(x[0] as Shape, attrInts(n, "axes"), attrInt(n, "keepdims", 1) === 1),
  ],
  ReduceSum: (n, c, x) => [
    reduceShape(x[0] as Shape, n.inputs[1] ? c.ints(n.inputs[1]) : null, attrInt(n, "keepdims", 1) === 1),
  ],
  Reshape: (n, c, x) => [reshapeTo(x[0] as Shape, c.ints(n.inputs[1] as string))],
  Transpose: (n, _c, [x]) => [(attrInts(n, "perm") ?? []).map((p) => (x as Shape)[p] as number)],
  Concat: (n, _c, xs) => {
    const axis = normAxis(attrInt(n, "axis", 0), (xs[0] as Shape).length);
    const out = [...(xs[0] as Shape)];
    out[axis] = xs.reduce((sum, s) => sum + (s[axis] as number), 0);
    return [out];
  },
  Split: (n, c, [x]) => {
    const axis = normAxis(attrInt(n, "axis", 0), (x as Shape).length);
    return c.ints(n.inputs[1] as string).map((size) => (x as Shape).map((d, i) => (i === axis ? size : d)));
  },
  Unsqueeze: (n, c, [x]) => {
    const axes = c.ints(n.inputs[1] as string);
    const rank = (x as Shape).length + axes.length;
    const set = new Set(axes.map((a) => normAxis(a, rank)));
    const rest = [...(x as Shape)];
    return [Array.from({ length: rank }, (_, i) => (set.has(i) ? 1 : (rest.shift() as number)))];
  },
  Slice: (n, c, [x]) => [sliceShape(x as Shape, c, n)],
  Gather: (n, _c, [data, idx]) => {
    const axis = normAxis(attrInt(n, "axis", 0), (data as Shape).length);
    const d = data as Shape;
    return [[...d.slice(0, axis), ...(idx as Shape), ...d.slice(axis + 1)]];
  },
  GatherElements: (_n, _c, x) => [x[1] as Shape],
  ScatterElements: (_n, _c, x) => [x[0] as Shape],
  Tile: (n, c, [x]) => [(x as Shape).map((d, i) => d * (c.ints(n.inputs[1] as string)[i] as number))],
  Expand: (n, c, [x]) => [broadcast(x as Shape, c.ints(n.inputs[1] as string))],
  ConstantOfShape: (n, c) => [c.ints(n.inputs[0] as string)],
  Pad: (n, c, [x]) => {
    const pads = c.ints(n.inputs[1] as string);
    const r = (x as Shape).length;
    return [(x as Shape).map((d, i) => d + (pads[i] as number) + (pads[i + r] as number))];
  },
  Shape: (_n, _c, [x]) => [[(x as Shape).length]],
};

/** Shapes of every value in `g` (inputs must have numeric dims). */
export function inferShapes(g: GraphBuilder): ShapeContext {
  const shapes = new Map<string, Shape>();
  const providers = new Map(g.initializers.map((t) => [t.name, t]));
  for (const t of g.initializers) shapes.set(t.name, t.dims);
  for (const i of g.inputs) {
    if (i.dims.some((d) => typeof d !== "number")) {
      throw new AppError(
        "internal_error",
        `training graph input "${i.name}" must have fixed dims; got [${i.dims}]`,
      );
    }
    shapes.set(i.name, i.dims as number[]);
  }
  const ctx: ShapeContext = {
    shape(name) {
      const s = shapes.get(name);
      if (!s) throw new AppError("internal_error", `shape of "${name}" is unknown`);
      return s;
    },
    ints(name) {
      const t = providers.get(name);
      if (t?.elemType === "int64") return Array.from(t.provide() as BigInt64Array, Number);
      throw new AppError("internal_error", `"${name}" must be an int64 constant`);
    },
  };
  for (const node of g.nodes) inferNode(node, ctx, shapes);
  return ctx;
}

function inferNode(node: NodeDef, ctx: ShapeContext, shapes: Map<string, Shape>): void {
  const rule = RULES[node.op];
  if (!rule) throw new AppError("internal_error", `no shape rule for op ${node.op} (node ${node.name})`);
  const ins = node.inputs.map((name) => (name === "" ? [] : ctx.shape(name)));
  rule(node, ctx, ins).forEach((s, i) => {
    const out = node.outputs[i];
    if (out !== undefined) shapes.set(out, s);
  });
}
