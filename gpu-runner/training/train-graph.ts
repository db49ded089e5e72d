// The decoder of every family we serve as a training graph: the whole sequence at once (no KV cache), LoRA A
// and B as graph inputs in PEFT's layout, the loss in-graph, and (unless forward-only) the backward appended by
// autodiff.ts with one output per LoRA tensor. Base weights are initializers: frozen, read once per session.
// The family math is the serving graph's (onnx/llama-decoder.ts `DecoderMath`, in HF's order of operations):
// q/k norms, (1 + w) norms, sandwich norms, scaled embeddings, GeGLU, query_pre_attn_scalar, soft-capping,
// partial rotary and LongRoPE, fused qkv/gate_up linears, per-layer rope tables and sliding-window masks.
// Built for a fixed [batch, seq]; rows are right-padded, so causal attention alone keeps padding out of
// every real position, and padded targets carry loss weight 0.

import { AppError } from "../../src/errors.ts";
import { type Rope, writeCosSin } from "../engine/model/rope.ts";
import type { GraphBuilder } from "../engine/onnx/graph-builder.ts";
import { GraphBuilder as Builder } from "../engine/onnx/graph-builder.ts";
import { geluTanh, partialRotary, rmsNorm, softcap } from "../engine/onnx/layers.ts";
import {
  type DecoderSpec,
  type LayerKind,
  type LinearName,
  linearShape,
  moduleName,
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
  /** Per rope table of `decoder.math.layerRope` (HfModel.ropes): gemma3's local layers read table 1. */
  ropes: readonly Rope[];
  /**
   * LongRoPE's long frequencies for every position (HF switches per forward pass, on the longest position it
   * holds: trainer.ts picks per micro-batch from its longest row). Ignored by ropes without them.
   */
  longRope?: boolean;
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

/** One of a layer's linears by its family name (q_proj, qkv_proj, ...), with its bias when it has one. */
function familyLinear(c: Ctx, x: string, layer: number, m: LinearName): string {
  const d = c.spec.decoder;
  const { inFeatures, outFeatures } = linearShape(d, m);
  return linear(c, x, moduleName(layer, m), inFeatures, outFeatures, d.biased.has(m));
}

/** Splits the last axis of `x` into consecutive parts of these widths (Phi-3's fused linears). */
function splitLast(g: GraphBuilder, x: string, widths: number[]): string[] {
  return g.node("Split", [x, g.constant("int64", widths)], { axis: { i: -1 } }, widths.length);
}

interface RopeTable {
  cos: string;
  sin: string;
}

function ropeTables(c: Ctx): RopeTable[] {
  const { seq } = c.spec;
  const d = c.spec.decoder.math.rotaryDim;
  const tables = [...new Set(c.spec.decoder.math.layerRope)];
  const out: RopeTable[] = [];
  for (const r of tables) {
    const rope = c.spec.ropes[r];
    if (!rope) throw new AppError("internal_error", `training graph: no rope table ${r}`);
    const cos = new Float32Array(seq * d);
    const sin = new Float32Array(seq * d);
    for (let t = 0; t < seq; t++) writeCosSin(rope, t, cos, sin, t * d, c.spec.longRope === true);
    const suffix = r === 0 ? "" : `.${r}`;
    out[r] = {
      cos: c.g.initializer(`rope_cos${suffix}`, "float32", [1, seq, 1, d], () => cos),
      sin: c.g.initializer(`rope_sin${suffix}`, "float32", [1, seq, 1, d], () => sin),
    };
  }
  return out;
}

/**
 * Causal mask over [G·T, T] in the grouped-query row order (query head group-major, then position); a
 * sliding layer also hides keys `window` or more positions back (HF's `kv_idx > q_idx - sliding_window`).
 */
function attentionMask(c: Ctx, group: number, kind: LayerKind): string {
  const t = c.spec.seq;
  const window = kind === "sliding" ? (c.spec.decoder.math.slidingWindow ?? t) : t;
  const data = new Float32Array(group * t * t);
  for (let r = 0; r < group * t; r++) {
    const q = r % t;
    for (let s = 0; s < t; s++) if (s > q || s <= q - window) data[r * t + s] = -1e9;
  }
  const name = kind === "full" ? "causal_mask" : "sliding_mask";
  return c.g.initializer(name, "float32", [1, 1, group * t, t], () => data);
}

/** An RMSNorm weight as the norm multiplies by it: w, or gemma's (1 + w) (HF's `1.0 + self.weight.float()`). */
function norm(c: Ctx, name: string, size = c.spec.decoder.hiddenSize): string {
  const plusOne = c.spec.decoder.math.normPlusOne;
  if (c.spec.trainBase?.has(name)) {
    const w = c.g.input(trainIo.base(name), "float32", [size]);
    return plusOne ? add(c.g, w, scalar(c.g, 1)) : w;
  }
  return c.g.initializer(name, "float32", [size], () => {
    const w = c.spec.weights.get(name);
    return plusOne ? w.map((v) => Math.fround(1 + v)) : w;
  });
}

function layerNorm(c: Ctx, x: string, name: string, size?: number): string {
  return rmsNorm(c.g, x, norm(c, name, size), c.spec.decoder.rmsNormEps);
}

function projections(c: Ctx, x: string, layer: number): { q: string; k: string; v: string } {
  const d = c.spec.decoder;
  if (!d.linears.includes("qkv_proj")) {
    return {
      q: familyLinear(c, x, layer, "q_proj"),
      k: familyLinear(c, x, layer, "k_proj"),
      v: familyLinear(c, x, layer, "v_proj"),
    };
  }
  const kv = d.numKvHeads * d.headDim;
  const [q, k, v] = splitLast(c.g, familyLinear(c, x, layer, "qkv_proj"), [d.numHeads * d.headDim, kv, kv]);
  return { q: q as string, k: k as string, v: v as string };
}

function attention(c: Ctx, x: string, layer: number, rope: RopeTable, mask: string): string {
  const { g } = c;
  const d = c.spec.decoder;
  const m = d.math;
  const hd = d.headDim;
  const group = d.numHeads / d.numKvHeads;
  const p = `model.layers.${layer}.self_attn`;
  const { q, k, v } = projections(c, x, layer);
  const heads = (y: string, n: number, normName: string) => {
    const split = reshape(g, y, [0, 0, n, hd]);
    const normed = m.qkNorm ? layerNorm(c, split, `${p}.${normName}.weight`, hd) : split;
    return partialRotary(g, normed, rope.cos, rope.sin, hd, m.rotaryDim);
  };
  const qr = heads(q, d.numHeads, "q_norm");
  const kr = heads(k, d.numKvHeads, "k_norm");
  const keyT = transpose(g, kr, [0, 2, 3, 1]); // [B, KVH, D, T]
  const value = transpose(g, reshape(g, v, [0, 0, d.numKvHeads, hd]), [0, 2, 1, 3]); // [B, KVH, T, D]
  const qg = transpose(g, reshape(g, qr, [0, 0, d.numKvHeads, group, hd]), [0, 2, 3, 1, 4]); // [B, KVH, G, T, D]
  const qFlat = reshape(g, qg, [0, 0, -1, hd]); // [B, KVH, G·T, D]
  const scaled = mul(g, matMul(g, qFlat, keyT), scalar(g, m.attentionScale));
  const capped = m.attnSoftcap === null ? scaled : softcap(g, scaled, m.attnSoftcap);
  const ctx = matMul(g, softmax(g, add(g, capped, mask), -1), value); // [B, KVH, G·T, D]
  const grouped = reshape(g, ctx, [0, 0, group, -1, hd]);
  const out = reshape(g, transpose(g, grouped, [0, 3, 1, 2, 4]), [0, 0, -1]); // [B, T, H·D]
  return familyLinear(c, out, layer, "o_proj");
}

function mlp(c: Ctx, x: string, layer: number): string {
  const { g } = c;
  const d = c.spec.decoder;
  const [gate, up] = d.linears.includes("gate_up_proj")
    ? (splitLast(g, familyLinear(c, x, layer, "gate_up_proj"), [d.intermediateSize, d.intermediateSize]) as [
        string,
        string,
      ])
    : [familyLinear(c, x, layer, "gate_proj"), familyLinear(c, x, layer, "up_proj")];
  const act = d.math.activation === "silu" ? mul(g, gate, sigmoid(g, gate)) : geluTanh(g, gate);
  return familyLinear(c, mul(g, act, up), layer, "down_proj");
}

function lossHead(c: Ctx, hidden: string, embed: string): { loss: string; nll: string } {
  const { g } = c;
  const d = c.spec.decoder;
  const n = c.spec.batch * c.spec.seq;
  const normed = reshape(g, layerNorm(c, hidden, "model.norm.weight"), [n, d.hiddenSize]);
  const head = d.tieWordEmbeddings
    ? embed
    : baseTensor(c, "lm_head.weight", "lm_head.weight", [d.vocabSize, d.hiddenSize], () =>
        c.spec.weights.get("lm_head.weight"),
      );
  const logits = g.op("Gemm", [normed, head], { transB: { i: 1 } });
  const capped = d.math.finalSoftcap === null ? logits : softcap(g, logits, d.math.finalSoftcap);
  const logp = g.op("LogSoftmax", [capped], { axis: { i: 1 } });
  const targets = g.input(trainIo.targets, "int64", [n, 1]);
  const picked = reshape(g, g.op("GatherElements", [logp, targets], { axis: { i: 1 } }), [n]);
  const weights = g.input(trainIo.lossWeights, "float32", [n]);
  const loss = neg(g, reduceSum(g, mul(g, picked, weights), [0], false));
  return { loss, nll: neg(g, picked) };
}

export function buildTrainGraph(spec: TrainGraphSpec): GraphBuilder {
  const g = new Builder();
  const d = spec.decoder;
  const c: Ctx = { g, spec, lora: new Map(spec.modules.map((m) => [m.name, m])) };
  const ids = g.input(trainIo.inputIds, "int64", [spec.batch, spec.seq]);
  const embedName = "model.embed_tokens.weight";
  const embed = baseTensor(c, embedName, embedName, [d.vocabSize, d.hiddenSize], () =>
    spec.weights.get(embedName),
  );
  const ropes = ropeTables(c);
  const group = d.numHeads / d.numKvHeads;
  const masks: Partial<Record<LayerKind, string>> = {};
  for (const kind of new Set(d.math.layerKinds)) masks[kind] = attentionMask(c, group, kind);
  let hidden = gather(g, embed, ids); // [B, T, hidden]
  if (d.math.embedScale !== 1) hidden = mul(g, hidden, scalar(g, d.math.embedScale));
  for (let l = 0; l < d.numLayers; l++) {
    const rope = ropes[d.math.layerRope[l] ?? 0] as RopeTable;
    const mask = masks[d.math.layerKinds[l] ?? "full"] as string;
    hidden = g.scope(`layers.${l}`, () => decoderLayer(c, hidden, l, rope, mask));
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

function decoderLayer(c: Ctx, hidden: string, layer: number, rope: RopeTable, mask: string): string {
  const { g } = c;
  const p = `model.layers.${layer}`;
  const attnOut = attention(c, layerNorm(c, hidden, `${p}.input_layernorm.weight`), layer, rope, mask);
  if (c.spec.decoder.math.sandwichNorms) {
    const afterAttn = add(g, hidden, layerNorm(c, attnOut, `${p}.post_attention_layernorm.weight`));
    const mlpOut = mlp(c, layerNorm(c, afterAttn, `${p}.pre_feedforward_layernorm.weight`), layer);
    return add(g, afterAttn, layerNorm(c, mlpOut, `${p}.post_feedforward_layernorm.weight`));
  }
  const afterAttn = add(g, hidden, attnOut);
  return add(g, afterAttn, mlp(c, layerNorm(c, afterAttn, `${p}.post_attention_layernorm.weight`), layer));
}
