// Backward rules, one per ONNX op the forward graphs emit. Each receives the node, the gradients of its
// outputs (null where an output does not reach the loss) and which inputs need a gradient; it emits ONNX nodes
// and returns one gradient name per input (null where not needed). Shapes are static (shapes.ts).
import type { GraphBuilder } from "../engine/onnx/graph-builder.ts";
import type { NodeDef } from "../engine/onnx/onnx-proto.ts";
import { div, matMul, mul, neg, reshape, scalar, sub, transpose } from "../engine/onnx/ops.ts";
import { attrInt, attrInts, normAxis, numel, type Shape, sliceRange } from "./shapes.ts";

export interface GradContext {
  g: GraphBuilder;
  shape(name: string): Shape;
  ints(name: string): number[];
}

export type GradRule = (
  c: GradContext,
  node: NodeDef,
  dy: (string | null)[],
  needs: boolean[],
) => (string | null)[];

/** Sums a gradient shaped like a broadcast result back down to the operand's shape. */
export function unbroadcast(c: GradContext, grad: string, from: Shape, to: Shape): string {
  if (from.join(",") === to.join(",")) return grad;
  const lead = from.length - to.length;
  const axes: number[] = [];
  from.forEach((d, i) => {
    if (i < lead || (to[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  const summed = axes.length ? reduceSum(c.g, grad, axes, true) : grad;
  return reshape(c.g, summed, to);
}

export const reduceSum = (g: GraphBuilder, x: string, axes: number[], keep: boolean) =>
  g.op("ReduceSum", [x, g.constant("int64", axes)], { keepdims: { i: keep ? 1 : 0 } });

const zeros = (g: GraphBuilder, shape: Shape) =>
  g.op("ConstantOfShape", [g.constant("int64", shape)], {
    value: { t: { name: "zero", elemType: "float32", dims: [1], data: new Uint8Array(4) } },
  });

/** Swaps the last two axes. */
const swapLast = (g: GraphBuilder, x: string, rank: number) => {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return transpose(g, x, perm);
};

const first = (dy: (string | null)[]) => dy[0] as string;
const ins = (n: NodeDef, i: number) => n.inputs[i] as string;
const out = (n: NodeDef) => n.outputs[0] as string;

const binaryRule =
  (grads: (c: GradContext, n: NodeDef, dy: string) => [() => string, () => string]): GradRule =>
  (c, n, dy, needs) => {
    const y = c.shape(out(n));
    const [da, db] = grads(c, n, first(dy));
    return [
      needs[0] ? unbroadcast(c, da(), y, c.shape(ins(n, 0))) : null,
      needs[1] ? unbroadcast(c, db(), y, c.shape(ins(n, 1))) : null,
    ];
  };

const unary =
  (f: (c: GradContext, n: NodeDef, dy: string) => string): GradRule =>
  (c, n, dy) => [f(c, n, first(dy))];

function matMulRule(c: GradContext, n: NodeDef, dy: (string | null)[], needs: boolean[]): (string | null)[] {
  const g = c.g;
  const [a, b] = [ins(n, 0), ins(n, 1)];
  const [sa, sb, sy] = [c.shape(a), c.shape(b), c.shape(out(n))];
  const d = first(dy);
  const da = needs[0] ? unbroadcast(c, matMul(g, d, swapLast(g, b, sb.length)), sy, sa) : null;
  if (!needs[1]) return [da, null];
  if (sb.length === 2) {
    // A 2-D right operand (a weight): fold the batch into rows and let one Gemm sum over them.
    const k = sa[sa.length - 1] as number;
    const m = sy[sy.length - 1] as number;
    return [da, g.op("Gemm", [reshape(g, a, [-1, k]), reshape(g, d, [-1, m])], { transA: { i: 1 } })];
  }
  const full = matMul(g, swapLast(g, a, sa.length), d);
  const shapeA = [...sy.slice(0, -2), sa[sa.length - 1] as number, sy[sy.length - 1] as number];
  return [da, unbroadcast(c, full, shapeA, sb)];
}

function gemmRule(c: GradContext, n: NodeDef, dy: (string | null)[], needs: boolean[]): (string | null)[] {
  if (n.inputs.length > 2 || attrInt(n, "alpha", 1) !== 1)
    throw new Error("Gemm backward: bias/alpha unsupported");
  const g = c.g;
  const [a, b, d] = [ins(n, 0), ins(n, 1), first(dy)];
  const ta = attrInt(n, "transA", 0) === 1;
  const tb = attrInt(n, "transB", 0) === 1;
  const gm = (x: string, y: string, tx: boolean, ty: boolean) =>
    g.op("Gemm", [x, y], { transA: { i: tx ? 1 : 0 }, transB: { i: ty ? 1 : 0 } });
  // Y = A'·B'  ⇒  dA' = dY·B'ᵀ, dB' = A'ᵀ·dY, each written without materialising a transpose.
  const da = ta ? gm(b, d, tb, true) : gm(d, b, false, !tb);
  const db = tb ? gm(d, a, true, ta) : gm(a, d, !ta, false);
  return [needs[0] ? da : null, needs[1] ? db : null];
}

function expandTo(c: GradContext, dy: string, reducedKeep: Shape, full: Shape): string {
  const kept = reshape(c.g, dy, reducedKeep);
  return c.g.op("Expand", [kept, c.g.constant("int64", full)]);
}

function reduceRule(mean: boolean): GradRule {
  return (c, n, dy) => {
    const x = c.shape(ins(n, 0));
    const axesList = mean ? attrInts(n, "axes") : n.inputs[1] ? c.ints(ins(n, 1)) : null;
    const axes = new Set(
      (axesList?.length ? axesList : x.map((_, i) => i)).map((a) => normAxis(a, x.length)),
    );
    const keep = x.map((d, i) => (axes.has(i) ? 1 : d));
    const spread = expandTo(c, first(dy), keep, x);
    return [mean ? mul(c.g, spread, scalar(c.g, numel(keep) / numel(x))) : spread];
  };
}

function sliceRule(c: GradContext, n: NodeDef, dy: (string | null)[]): (string | null)[] {
  const x = c.shape(ins(n, 0));
  const starts = c.ints(ins(n, 1));
  const ends = c.ints(ins(n, 2));
  const pads = new Array<number>(2 * x.length).fill(0);
  c.ints(ins(n, 3)).forEach((axis, i) => {
    const ax = normAxis(axis, x.length);
    const r = sliceRange(x[ax] as number, starts[i] as number, ends[i] as number);
    pads[ax] = r.start;
    pads[ax + x.length] = (x[ax] as number) - r.end;
  });
  return [c.g.op("Pad", [first(dy), c.g.constant("int64", pads)])];
}

function concatRule(c: GradContext, n: NodeDef, dy: (string | null)[], needs: boolean[]): (string | null)[] {
  const axis = attrInt(n, "axis", 0);
  const sizes = n.inputs.map((i) => c.shape(i)[normAxis(axis, c.shape(i).length)] as number);
  const parts = c.g.node(
    "Split",
    [first(dy), c.g.constant("int64", sizes)],
    { axis: { i: axis } },
    sizes.length,
  );
  return parts.map((p, i) => (needs[i] ? p : null));
}

function splitRule(c: GradContext, n: NodeDef, dy: (string | null)[]): (string | null)[] {
  const parts = n.outputs.map((o, i) => dy[i] ?? zeros(c.g, c.shape(o)));
  return [c.g.op("Concat", parts, { axis: { i: attrInt(n, "axis", 0) } })];
}

/** Gathered rows scatter-add back; a row picked twice gets both gradients. */
function gatherRule(c: GradContext, n: NodeDef, dy: (string | null)[]): (string | null)[] {
  if (attrInt(n, "axis", 0) !== 0) throw new Error("Gather backward: only axis 0");
  const g = c.g;
  const data = c.shape(ins(n, 0));
  const rows = numel(c.shape(ins(n, 1)));
  const width = numel(data.slice(1));
  const idx = g.op("Expand", [reshape(g, ins(n, 1), [rows, 1]), g.constant("int64", [rows, width])]);
  const scattered = g.op(
    "ScatterElements",
    [zeros(g, [data[0] as number, width]), idx, reshape(g, first(dy), [rows, width])],
    {
      axis: { i: 0 },
      reduction: { s: "add" },
    },
  );
  return [reshape(g, scattered, data), null];
}

function gatherElementsRule(c: GradContext, n: NodeDef, dy: (string | null)[]): (string | null)[] {
  const g = c.g;
  const scattered = g.op("ScatterElements", [zeros(g, c.shape(ins(n, 0))), ins(n, 1), first(dy)], {
    axis: { i: attrInt(n, "axis", 0) },
    reduction: { s: "add" },
  });
  return [scattered, null];
}

function tileRule(c: GradContext, n: NodeDef, dy: (string | null)[]): (string | null)[] {
  const x = c.shape(ins(n, 0));
  const reps = c.ints(ins(n, 1));
  // Output axis i of size reps[i]·x[i] reads as [reps[i], x[i]]: sum over the repeat axes.
  const split = x.flatMap((d, i) => [reps[i] as number, d]);
  const summed = reduceSum(
    c.g,
    reshape(c.g, first(dy), split),
    x.map((_, i) => 2 * i),
    false,
  );
  return [reshape(c.g, summed, x), null];
}

const reshapeBack: GradRule = (c, n, dy) => [reshape(c.g, first(dy), c.shape(ins(n, 0))), null];

export const GRAD_RULES: Record<string, GradRule> = {
  Add: binaryRule((_c, _n, d) => [() => d, () => d]),
  Sub: binaryRule((c, _n, d) => [() => d, () => neg(c.g, d)]),
  Mul: binaryRule((c, n, d) => [() => mul(c.g, d, ins(n, 1)), () => mul(c.g, d, ins(n, 0))]),
  Div: binaryRule((c, n, d) => [
    () => div(c.g, d, ins(n, 1)),
    () => neg(c.g, div(c.g, mul(c.g, d, out(n)), ins(n, 1))),
  ]),
  Neg: unary((c, _n, d) => neg(c.g, d)),
  Sqrt: unary((c, n, d) => div(c.g, mul(c.g, d, scalar(c.g, 0.5)), out(n))),
  Reciprocal: unary((c, n, d) => neg(c.g, mul(c.g, d, mul(c.g, out(n), out(n))))),
  Sigmoid: unary((c, n, d) => mul(c.g, d, mul(c.g, out(n), sub(c.g, scalar(c.g, 1), out(n))))),
  Tanh: unary((c, n, d) => mul(c.g, d, sub(c.g, scalar(c.g, 1), mul(c.g, out(n), out(n))))),
  Exp: unary((c, n, d) => mul(c.g, d, out(n))),
  Log: unary((c, n, d) => div(c.g, d, ins(n, 0))),
  Identity: unary((_c, _n, d) => d),
  Cast: unary((_c, _n, d) => d),
  Softmax: unary((c, n, d) => {
    const axis = attrInt(n, "axis", -1);
    const y = out(n);
    return mul(c.g, y, sub(c.g, d, reduceSum(c.g, mul(c.g, d, y), [axis], true)));
  }),
  LogSoftmax: unary((c, n, d) => {
    const axis = attrInt(n, "axis", -1);
    const p = c.g.op("Exp", [out(n)]);
    return sub(c.g, d, mul(c.g, p, reduceSum(c.g, d, [axis], true)));
  }),
  MatMul: matMulRule,
  Gemm: gemmRule,
  ReduceMean: reduceRule(true),
  ReduceSum: reduceRule(false),
  Reshape: reshapeBack,
  Unsqueeze: reshapeBack,
  Squeeze: reshapeBack,
  Expand: (c, n, dy) => [unbroadcast(c, first(dy), c.shape(out(n)), c.shape(ins(n, 0))), null],
  Transpose: unary((c, n, d) => {
    const perm = attrInts(n, "perm") ?? [];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return transpose(c.g, d, inverse);
  }),
  Concat: concatRule,
  Split: splitRule,
  Slice: sliceRule,
  Gather: gatherRule,
  GatherElements: gatherElementsRule,
  Tile: tileRule,
};
