// The llama-family decoder as a training graph: the whole sequence at once (no KV cache), LoRA A and B as
// graph inputs in PEFT's layout, the loss in-graph, and (unless forward-only) the backward appended by
// autodiff.ts with one output per LoRA tensor. Base weights are initializers: frozen, read once per session.
// Built for a fixed [batch, seq]; rows are right-padded, so causal attention alone keeps padding out of
// every real position, and padded targets carry loss weight 0.

import { AppError } from "../../src/errors.ts";
import { type Rope, writeCosSin } from "../engine/model/rope.ts";
import type { GraphBuilder } from "../engine/onnx/graph-builder.ts";
import { GraphBuilder as Builder } from "../engine/onnx/graph-builder.ts";
import { rmsNorm, rotary } from "../engine/onnx/layers.ts";
import {
  beyondLlamaShape,
  type DecoderSpec,
  transposeMatrix,
  type WeightSource,
} from "../engine/onnx/llama-decoder.ts";
import {
  add,
  gather,
  matMul,
  mul,
  neg,
  reshape,
  scalar,
  sigmoid,
  softmax,
  transpose,
} from "../engine/onnx/ops.ts";
import { appendBackward } from "./autodiff.ts";
import { reduceSum } from "./grad-rules.ts";

/** One adapted linear: A: [rank, in], B: [out, rank] (PEFT's layout), y += scale · (x·Aᵀ)·Bᵀ. */
export interface TrainModule {
  /** e.g. "model.layers.0.self_attn.q_proj" */
  name: string;
  inFeatures: number;
  outFeatures: number;
  rank: number;
  scale: number;
}

export interface TrainGraphSpec {
  decoder: DecoderSpec;
  rope: Rope;
  weights: WeightSource;
  modules: TrainModule[];
  batch: number;
  seq: number;
  /** Adds one dropout-mask input per module ([batch, seq, in], values 0 or 1/(1-p)). */
  dropout: boolean;
  /** false: loss and per-token NLL only (evaluation). */
  backward: boolean;
  /** HF names of base tensors to train too (full-parameter mode); fed as inputs, with gradients out. */
  trainBase?: ReadonlySet<string>;
}

/** A trained base tensor's shape in the graph: linear weights transposed to [in, out]. */
export function baseGraphDims(hfName: string, hfShape: number[]): number[] {
  return hfName.endsWith("_proj.weight") ? [hfShape[1] as number, hfShape[0] as number] : hfShape;
}

export const trainIo = {
  inputIds: "input_ids",
  /** [batch·seq, 1] int64: the next token at each position (any id where the weight is 0). */
  targets: "targets",
  /** [batch·seq] float: each position's share of the loss (0 for prompt and padding). */
  lossWeights: "loss_weights",
  loss: "loss",
  /** [batch·seq] per-position −log p(target). */
  nll: "nll",
  a: (m: string) => `lora_A.${m}`,
  b: (m: string) => `lora_B.${m}`,
  gradA: (m: string) => `grad.lora_A.${m}`,
  gradB: (m: string) => `grad.lora_B.${m}`,
  dropMask: (m: string) => `dropout.${m}`,
  base: (name: string) => `base.${name}`,
  gradBase: (name: string) => `grad.base.${name}`,
};

interface Ctx {
  g: GraphBuilder;
  spec: TrainGraphSpec;
  lora: Map<string, TrainModule>;
}

/**
 * A base tensor: a frozen initializer, or, when the spec trains it (full-parameter mode), a graph input.
 * Linear weights live transposed ([in, out]) in the graph; `trainIo.base` names them by their HF name.
 */
function baseTensor(
  c: Ctx,
  hfName: string,
  graphName: string,
  dims: number[],
  provide: () => Float32Array,
): string {
  if (c.spec.trainBase?.has(hfName)) return c.g.input(trainIo.base(hfName), "float32", dims);
  return c.g.initializer(graphName, "float32", dims, provide);
}

function linear(c: Ctx, x: string, name: string, inF: number, outF: number, hasBias: boolean): string {
  const { g } = c;
  const wT = baseTensor(c, `${name}.weight`, `${name}.weight_t`, [inF, outF], () =>
    transposeMatrix(c.spec.weights.get(`${name}.weight`), outF, inF),
  );
  let y = matMul(g, x, wT);
  if (hasBias)
    y = add(
      g,
      y,
      baseTensor(c, `${name}.bias`, `${name}.bias`, [outF], () => c.spec.weights.get(`${name}.bias`)),
    );
  const m = c.lora.get(name);
  if (!m) return y;
  const { batch, seq } = c.spec;
  const a = g.input(trainIo.a(name), "float32", [m.rank, inF]);
  const b = g.input(trainIo.b(name), "float32", [outF, m.rank]);
  const dropped = c.spec.dropout
    ? mul(g, x, g.input(trainIo.dropMask(name), "float32", [batch, seq, inF]))
    : x;
  const low = matMul(g, matMul(g, dropped, transpose(g, a, [1, 0])), transpose(g, b, [1, 0]));
  return add(g, y, mul(g, low, scalar(g, m.scale)));
}

function ropeTables(c: Ctx): { cos: string; sin: string } {
  const { seq } = c.spec;
  const d = c.spec.decoder.headDim;
  const cos = new Float32Array(seq * d);
  const sin = new Float32Array(seq * d);
  for (let t = 0; t < seq; t++) writeCosSin(c.spec.rope, t, cos, sin, t * d);
  return {
    cos: c.g.initializer("rope_cos", "float32", [1, seq, 1, d], () => cos),
    sin: c.g.initializer("rope_sin", "float32", [1, seq, 1, d], () => sin),
  };
}

/** Causal mask over [G·T, T] in the grouped-query row order (query head group-major, then position). */
function causalMask(c: Ctx, group: number): string {
  const t = c.spec.seq;
  const data = new Float32Array(group * t * t);
  for (let r = 0; r < group * t; r++) for (let s = (r % t) + 1; s < t; s++) data[r * t + s] = -1e9;
  return c.g.initializer("causal_mask", "float32", [1, 1, group * t, t], () => data);
}

function attention(
  c: Ctx,
  x: string,
  prefix: string,
  rope: { cos: string; sin: string },
  mask: string,
): string {
  const { g } = c;
  const d = c.spec.decoder;
  const hd = d.headDim;
  const group = d.numHeads / d.numKvHeads;
  const lin = (m: string, inF: number, outF: number) =>
    linear(c, x, `${prefix}.self_attn.${m}`, inF, outF, d.biased.has(m as never));
  const q = lin("q_proj", d.hiddenSize, d.numHeads * hd);
  const k = lin("k_proj", d.hiddenSize, d.numKvHeads * hd);
  const v = lin("v_proj", d.hiddenSize, d.numKvHeads * hd);
  const qr = rotary(g, reshape(g, q, [0, 0, d.numHeads, hd]), rope.cos, rope.sin, hd);
  const kr = rotary(g, reshape(g, k, [0, 0, d.numKvHeads, hd]), rope.cos, rope.sin, hd);
  const keyT = transpose(g, kr, [0, 2, 3, 1]); // [B, KVH, D, T]
  const value = transpose(g, reshape(g, v, [0, 0, d.numKvHeads, hd]), [0, 2, 1, 3]); // [B, KVH, T, D]
  const qg = transpose(g, reshape(g, qr, [0, 0, d.numKvHeads, group, hd]), [0, 2, 3, 1, 4]); // [B, KVH, G, T, D]
  const qFlat = reshape(g, qg, [0, 0, -1, hd]); // [B, KVH, G·T, D]
  const scores = add(g, mul(g, matMul(g, qFlat, keyT), scalar(g, hd ** -0.5)), mask);
  const ctx = matMul(g, softmax(g, scores, -1), value); // [B, KVH, G·T, D]
  const heads = reshape(g, ctx, [0, 0, group, -1, hd]);
  const out = reshape(g, transpose(g, heads, [0, 3, 1, 2, 4]), [0, 0, -1]); // [B, T, H·D]
  return linear(c, out, `${prefix}.self_attn.o_proj`, d.numHeads * hd, d.hiddenSize, false);
}

function mlp(c: Ctx, x: string, prefix: string): string {
  const d = c.spec.decoder;
  const lin = (m: string, inp: string, inF: number, outF: number) =>
    linear(c, inp, `${prefix}.mlp.${m}`, inF, outF, false);
  const gate = lin("gate_proj", x, d.hiddenSize, d.intermediateSize);
  const up = lin("up_proj", x, d.hiddenSize, d.intermediateSize);
  const act = mul(c.g, mul(c.g, gate, sigmoid(c.g, gate)), up);
  return lin("down_proj", act, d.intermediateSize, d.hiddenSize);
}

function norm(c: Ctx, name: string): string {
  return baseTensor(c, name, name, [c.spec.decoder.hiddenSize], () => c.spec.weights.get(name));
}

function lossHead(c: Ctx, hidden: string, embed: string): { loss: string; nll: string } {
  const { g } = c;
  const d = c.spec.decoder;
  const n = c.spec.batch * c.spec.seq;
  const normed = reshape(g, rmsNorm(g, hidden, norm(c, "model.norm.weight"), d.rmsNormEps), [
    n,
    d.hiddenSize,
  ]);
  const head = d.tieWordEmbeddings
    ? embed
    : baseTensor(c, "lm_head.weight", "lm_head.weight", [d.vocabSize, d.hiddenSize], () =>
        c.spec.weights.get("lm_head.weight"),
      );
  const logp = g.op("LogSoftmax", [g.op("Gemm", [normed, head], { transB: { i: 1 } })], { axis: { i: 1 } });
  const targets = g.input(trainIo.targets, "int64", [n, 1]);
  const picked = reshape(g, g.op("GatherElements", [logp, targets], { axis: { i: 1 } }), [n]);
  const weights = g.input(trainIo.lossWeights, "float32", [n]);
  const loss = neg(g, reduceSum(g, mul(g, picked, weights), [0], false));
  return { loss, nll: neg(g, picked) };
}

export function buildTrainGraph(spec: TrainGraphSpec): GraphBuilder {
  const g = new Builder();
  const d = spec.decoder;
  const beyond = beyondLlamaShape(d);
  if (beyond.length > 0) {
    // Training's graph has the llama shape only; serving computes the other families (llama-decoder.ts).
    throw new AppError(
      "invalid_model",
      `the base model: training supports llama, mistral and qwen2; this model has ${beyond.join(", ")} (not supported)`,
    );
  }
  const c: Ctx = { g, spec, lora: new Map(spec.modules.map((m) => [m.name, m])) };
  const ids = g.input(trainIo.inputIds, "int64", [spec.batch, spec.seq]);
  const embedName = "model.embed_tokens.weight";
  const embed = baseTensor(c, embedName, embedName, [d.vocabSize, d.hiddenSize], () =>
    spec.weights.get(embedName),
  );
  const rope = ropeTables(c);
  const mask = causalMask(c, d.numHeads / d.numKvHeads);
  let hidden = gather(g, embed, ids); // [B, T, hidden]
  for (let l = 0; l < d.numLayers; l++) {
    hidden = g.scope(`layers.${l}`, () => decoderLayer(c, hidden, `model.layers.${l}`, rope, mask));
  }
  const out = lossHead(c, hidden, embed);
  if (spec.backward) {
    const trained = [...(spec.trainBase ?? [])];
    const wrt = [
      ...spec.modules.flatMap((m) => [trainIo.a(m.name), trainIo.b(m.name)]),
      ...trained.map(trainIo.base),
    ];
    const grads = appendBackward(g, out.loss, wrt);
    const inputDims = new Map(g.inputs.map((i) => [i.name, i.dims]));
    for (const name of trained) {
      const input = trainIo.base(name);
      g.output(trainIo.gradBase(name), grads.get(input) as string, "float32", inputDims.get(input) ?? []);
    }
    for (const m of spec.modules) {
      g.output(trainIo.gradA(m.name), grads.get(trainIo.a(m.name)) as string, "float32", [
        m.rank,
        m.inFeatures,
      ]);
      g.output(trainIo.gradB(m.name), grads.get(trainIo.b(m.name)) as string, "float32", [
        m.outFeatures,
        m.rank,
      ]);
    }
  }
  g.output(trainIo.loss, out.loss, "float32", []);
  g.output(trainIo.nll, out.nll, "float32", [spec.batch * spec.seq]);
  return g;
}

function decoderLayer(
  c: Ctx,
  hidden: string,
  p: string,
  rope: { cos: string; sin: string },
  mask: string,
): string {
  const { g } = c;
  const eps = c.spec.decoder.rmsNormEps;
  const x = rmsNorm(g, hidden, norm(c, `${p}.input_layernorm.weight`), eps);
  const afterAttn = add(g, hidden, attention(c, x, p, rope, mask));
  const post = rmsNorm(g, afterAttn, norm(c, `${p}.post_attention_layernorm.weight`), eps);
  return add(g, afterAttn, mlp(c, post, p));
}
