// Graph outputs are node outputs renamed in place (no copying Identity), yet a graph input, or one value
// exposed under two names, must still come out of onnxruntime as itself.
import * as ort from "onnxruntime-node";
import { expect, it } from "vitest";
import { GraphBuilder } from "../../gpu-runner/engine/onnx/graph-builder.ts";
import { add, mul } from "../../gpu-runner/engine/onnx/ops.ts";

it("exposes node outputs, graph inputs and shared values under every name asked for", async () => {
  const g = new GraphBuilder();
  const x = g.input("x", "float32", [2]);
  const doubled = add(g, x, x);
  const squared = mul(g, doubled, doubled);
  g.output("doubled", doubled, "float32", [2]);
  g.output("doubled_again", doubled, "float32", [2]);
  g.output("squared", squared, "float32", [2]);
  g.output("echo", x, "float32", [2]);
  // A consumer built after `doubled` was exposed still reads it.
  g.output("tripled", add(g, doubled, x), "float32", [2]);
  expect(g.nodes.filter((n) => n.op === "Identity")).toHaveLength(2);
  const session = await ort.InferenceSession.create(g.toBytes());
  const out = await session.run({ x: new ort.Tensor("float32", Float32Array.from([1, -3]), [2]) });
  expect(Array.from(out.doubled?.data as Float32Array)).toEqual([2, -6]);
  expect(Array.from(out.doubled_again?.data as Float32Array)).toEqual([2, -6]);
  expect(Array.from(out.squared?.data as Float32Array)).toEqual([4, 36]);
  expect(Array.from(out.echo?.data as Float32Array)).toEqual([1, -3]);
  expect(Array.from(out.tripled?.data as Float32Array)).toEqual([3, -9]);
  await session.release();
});
