// Reverse-mode differentiation over a GraphBuilder's nodes: appends the backward nodes to the same graph and
// returns, per requested input, the name of its gradient. Only nodes on a path from a requested input to the
// loss get a backward, so frozen weights (initializers) never get a gradient computed or stored.
import { AppError } from "../../src/errors.ts";
import type { GraphBuilder } from "../engine/onnx/graph-builder.ts";
import type { NodeDef } from "../engine/onnx/onnx-proto.ts";
import { add } from "../engine/onnx/ops.ts";
import { GRAD_RULES, type GradContext } from "./grad-rules.ts";
import { inferShapes } from "./shapes.ts";

/** Inputs that carry no gradient (shapes, axes, indices); every other input is differentiable. */
const INDEX_INPUTS: Record<string, number[]> = {
  Reshape: [1],
  Unsqueeze: [1],
  Squeeze: [1],
  Expand: [1],
  Tile: [1],
  Split: [1],
  ReduceSum: [1],
  Slice: [1, 2, 3, 4],
  Gather: [1],
  GatherElements: [1],
  ScatterElements: [1],
  Pad: [1, 2],
  Shape: [0],
  ConstantOfShape: [0],
};

const differentiable = (node: NodeDef, i: number) => !(INDEX_INPUTS[node.op] ?? []).includes(i);

/** Values that depend on `wrt` through differentiable inputs (forward sweep). */
function dependents(nodes: NodeDef[], wrt: string[]): Set<string> {
  const set = new Set(wrt);
  for (const n of nodes) {
    if (n.inputs.some((v, i) => set.has(v) && differentiable(n, i))) for (const o of n.outputs) set.add(o);
  }
  return set;
}

/** Values from which the loss is reachable (backward sweep). */
function reachesLoss(nodes: NodeDef[], loss: string): Set<string> {
  const set = new Set([loss]);
  for (let k = nodes.length - 1; k >= 0; k--) {
    const n = nodes[k] as NodeDef;
    if (n.outputs.some((o) => set.has(o))) for (const v of n.inputs) set.add(v);
  }
  return set;
}

/**
 * Emits d(loss)/d(w) for each w in `wrt` (graph inputs or values); `loss` must be a scalar value of `g`.
 * Returns a map from each name in `wrt` to its gradient value (same shape).
 */
export function appendBackward(g: GraphBuilder, loss: string, wrt: string[]): Map<string, string> {
  const forward = [...g.nodes];
  const shapes = inferShapes(g);
  const live = dependents(forward, wrt);
  const useful = reachesLoss(forward, loss);
  const needed = (v: string) => live.has(v) && useful.has(v);
  const ctx: GradContext = { g, shape: shapes.shape, ints: shapes.ints };
  const grads = new Map<string, string>();
  const accumulate = (v: string, grad: string) => {
    const prior = grads.get(v);
    grads.set(v, prior ? add(g, prior, grad) : grad);
  };
  grads.set(loss, g.constant("float32", [1], shapes.shape(loss)));
  for (let k = forward.length - 1; k >= 0; k--) {
    const node = forward[k] as NodeDef;
    const dy = node.outputs.map((o) => grads.get(o) ?? null);
    if (dy.every((d) => d === null)) continue;
    const needs = node.inputs.map((v, i) => differentiable(node, i) && needed(v));
    if (!needs.some(Boolean)) continue;
    const rule = GRAD_RULES[node.op];
    if (!rule) throw new AppError("internal_error", `no gradient rule for op ${node.op} (node ${node.name})`);
    g.scope(`grad.${node.name}`, () => {
      rule(ctx, node, dy, needs).forEach((d, i) => {
        if (d && needs[i]) accumulate(node.inputs[i] as string, d);
      });
    });
  }
  const out = new Map<string, string>();
  for (const w of wrt) {
    const d = grads.get(w);
    if (!d) throw new AppError("internal_error", `"${w}" does not reach the loss "${loss}": no gradient`);
    out.set(w, d);
  }
  return out;
}
