// Finite-difference check of appendBackward: builds `loss = Σ f(inputs) ⊙ R` for a fixed random R, runs the
// analytic gradients in onnxruntime and compares them with central differences, along a random direction
// (all coordinates at once) and on single coordinates. Used by the tests and by anyone adding a rule.
import * as ort from "onnxruntime-node";
import { createRng, type Rng } from "../../src/random.ts";
import { GraphBuilder } from "../engine/onnx/graph-builder.ts";
import { mul } from "../engine/onnx/ops.ts";
import { appendBackward } from "./autodiff.ts";
import { reduceSum } from "./grad-rules.ts";
import { inferShapes, numel } from "./shapes.ts";

export interface CheckInput {
  name: string;
  dims: number[];
  /** Float inputs are differentiated; int64 inputs (indices) are fed as given. */
  data: Float32Array | BigInt64Array;
}

export interface GradCheckResult {
  /** Worst relative error over every comparison. */
  maxRelError: number;
  comparisons: number;
}

export interface GradCheckOptions {
  inputs: CheckInput[];
  /** Builds the function under test from the graph inputs of the same names; returns its output. */
  build(g: GraphBuilder): string;
  eps?: number;
  coordinates?: number;
  seed?: number;
}

function randomTensor(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.nextNormal());
}

function buildGraph(opts: GradCheckOptions, rng: Rng): { g: GraphBuilder; grads: Map<string, string> } {
  const g = new GraphBuilder();
  for (const i of opts.inputs) g.input(i.name, i.data instanceof Float32Array ? "float32" : "int64", i.dims);
  const y = opts.build(g);
  const shape = inferShapes(g).shape(y);
  const r = g.initializer("check_weights", "float32", shape, () => randomTensor(rng, numel(shape)));
  const loss = reduceSum(
    g,
    mul(g, y, r),
    shape.map((_, i) => i),
    false,
  );
  const floats = opts.inputs.filter((i) => i.data instanceof Float32Array).map((i) => i.name);
  const grads = appendBackward(g, loss, floats);
  g.output("loss", loss, "float32", []);
  for (const [w, d] of grads)
    g.output(`grad.${w}`, d, "float32", opts.inputs.find((i) => i.name === w)?.dims ?? []);
  return { g, grads };
}

export async function gradCheck(opts: GradCheckOptions): Promise<GradCheckResult> {
  const rng = createRng(opts.seed ?? 1);
  const eps = opts.eps ?? 1e-2;
  const { g, grads } = buildGraph(opts, rng);
  const session = await ort.InferenceSession.create(g.toBytes());
  const feeds = (override?: { name: string; data: Float32Array }) =>
    Object.fromEntries(
      opts.inputs.map((i) => {
        const data = override?.name === i.name ? override.data : i.data;
        return [i.name, new ort.Tensor(data instanceof Float32Array ? "float32" : "int64", data, i.dims)];
      }),
    );
  const lossAt = async (name: string, data: Float32Array) =>
    Number((await session.run(feeds({ name, data }), ["loss"])).loss?.data[0]);
  const analytic = await session.run(feeds());
  let maxRelError = 0;
  let comparisons = 0;
  const compare = (a: number, n: number) => {
    maxRelError = Math.max(maxRelError, Math.abs(a - n) / Math.max(Math.abs(a), Math.abs(n), 1e-3));
    comparisons += 1;
  };
  for (const name of grads.keys()) {
    const x = opts.inputs.find((i) => i.name === name)?.data as Float32Array;
    const grad = analytic[`grad.${name}`]?.data as Float32Array;
    const directions = [randomTensor(rng, x.length)];
    for (let k = 0; k < (opts.coordinates ?? 3); k++) {
      const unit = new Float32Array(x.length);
      unit[rng.nextU32() % x.length] = 1;
      directions.push(unit);
    }
    for (const u of directions) {
      const plus = x.map((v, i) => v + eps * (u[i] as number));
      const minus = x.map((v, i) => v - eps * (u[i] as number));
      const numeric = ((await lossAt(name, plus)) - (await lossAt(name, minus))) / (2 * eps);
      compare(
        grad.reduce((s, v, i) => s + v * (u[i] as number), 0),
        numeric,
      );
    }
  }
  await session.release();
  return { maxRelError, comparisons };
}
