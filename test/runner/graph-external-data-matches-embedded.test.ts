// Models past protobuf's 2 GB cap keep their weights in an external data file. The same decoder written
// both ways must load in onnxruntime and compute the same logits.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { io } from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import { writeSyntheticModel } from "../../scripts/bench/synthetic-model.ts";
import { TINY_MODELS } from "../helpers/tiny-models.ts";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lora-edge-extdata-"));
  writeSyntheticModel(join(dir, "model"), {
    ...(TINY_MODELS["tiny-llama"] as (typeof TINY_MODELS)[string]),
    shards: 3,
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function feeds(layers: number): Record<string, ort.Tensor> {
  const [batch, seq, headDim, kvHeads, past] = [1, 3, 16, 2, 1];
  const out: Record<string, ort.Tensor> = {
    [io.inputIds]: new ort.Tensor("int64", BigInt64Array.from([5n, 9n, 200n]), [batch, seq]),
    [io.cos]: new ort.Tensor("float32", new Float32Array(seq * headDim).fill(1), [batch, seq, headDim]),
    [io.sin]: new ort.Tensor("float32", new Float32Array(seq * headDim), [batch, seq, headDim]),
    // Causal mask over one masked past position and the three new ones.
    [io.bias]: new ort.Tensor(
      "float32",
      Float32Array.from([-1e30, 0, -1e30, -1e30, -1e30, 0, 0, -1e30, -1e30, 0, 0, 0]),
      [batch, seq, past + seq],
    ),
  };
  for (let l = 0; l < layers; l++) {
    out[io.pastKey(l)] = new ort.Tensor("float32", new Float32Array(kvHeads * past * headDim), [
      batch,
      kvHeads,
      past,
      headDim,
    ]);
    out[io.pastValue(l)] = new ort.Tensor("float32", new Float32Array(kvHeads * past * headDim), [
      batch,
      kvHeads,
      past,
      headDim,
    ]);
  }
  return out;
}

describe("external data", () => {
  it("a sharded model written with external weights gives the same logits as with embedded ones", async () => {
    const model = await loadHfModel(join(dir, "model"));
    const build = () =>
      model.facts.buildGraph(model.decoder, model.weights, { lora: null, presentOutputs: false });
    const embedded = await ort.InferenceSession.create(build().toBytes());
    const modelPath = join(dir, "external.onnx");
    writeFileSync(
      modelPath,
      build().toBytesWithExternalData(join(dir, "external.onnx.data"), "external.onnx.data"),
    );
    model.weights.close();
    expect(statSync(modelPath).size).toBeLessThan(statSync(join(dir, "external.onnx.data")).size / 10);
    expect(readFileSync(modelPath).includes(Buffer.from("external.onnx.data"))).toBe(true);
    const external = await ort.InferenceSession.create(modelPath);
    const a = (await embedded.run(feeds(2)))[io.logits]?.data as Float32Array;
    const b = (await external.run(feeds(2)))[io.logits]?.data as Float32Array;
    expect(a.length).toBe(256);
    expect(Array.from(b)).toEqual(Array.from(a));
    await embedded.release();
    await external.release();
  });
});
