// The decoder of every family we serve as an ONNX graph with a KV cache and multi-LoRA slots. The llama shape
// (pre-norm RMSNorm, rotary GQA, SwiGLU MLP; llama, mistral, qwen2) is the base; `DecoderMath` switches on
// what the other families add in HF's order of operations: q/k norms (qwen3, gemma3), gemma's (1 + w) norms,
// sandwich norms, scaled embeddings, GeGLU, soft-capping and query_pre_attn_scalar, Phi-3's fused qkv and
// gate_up linears and partial rotary, and sliding-window layers with their own mask (and gemma3 their own
// rope). One graph serves prefill and decode: T new tokens per row on top of a cache of C positions per row
// that the graph reads (the engine appends the returned new K/V), rows left-padded to a common T, padding,
// unused cache positions and positions outside a sliding window removed by the additive masks.
import type { LinearKind } from "../../../src/contracts/base-model.ts";
import { GraphBuilder } from "./graph-builder.ts";
import {
  type AttentionMath,
  fusedRmsNorm,
  gatedMlp,
  groupedAttention,
  groupMask,
  type LinearTensors,
  linear,
  rmsNorm,
  softcap,
  swiGlu,
} from "./layers.ts";
import { add, concat, gather, gemm, mul, reshape, SLICE_END, scalar, slice, unsqueeze } from "./ops.ts";

export { LINEAR_KINDS as LINEAR_NAMES } from "../../../src/contracts/base-model.ts";
export type LinearName = LinearKind;

const PARENT: Record<LinearName, "self_attn" | "mlp"> = {
  q_proj: "self_attn",
  k_proj: "self_attn",
  v_proj: "self_attn",
  o_proj: "self_attn",
  gate_proj: "mlp",
  up_proj: "mlp",
  down_proj: "mlp",
  qkv_proj: "self_attn",
  gate_up_proj: "mlp",
};

/** A layer's attention: every earlier position, or only the last `slidingWindow` (itself included). */
export type LayerKind = "full" | "sliding";

/** What a family computes beyond the llama shape; `LLAMA_MATH` (with the spec's sizes) is none of it. */
export interface DecoderMath {
  /** RMSNorm scales by w (llama) or by 1 + w (gemma's norms, q/k norms included). */
  normPlusOne: boolean;
  /** Gemma: post_attention_layernorm on the attention output, pre/post_feedforward_layernorm around the MLP. */
  sandwichNorms: boolean;
  /** Qwen3, gemma3: q_norm and k_norm (RMSNorm over head_dim) on q and k before rotary. */
  qkNorm: boolean;
  /** Embeddings times this (gemma: √hidden_size as float32); 1 for none. */
  embedScale: number;
  /** The MLP's gate activation: silu (SwiGLU) or gelu_pytorch_tanh (GeGLU). */
  activation: "silu" | "gelu_tanh";
  /** Multiplies q·k: head_dim^-0.5, or query_pre_attn_scalar^-0.5 (gemma). */
  attentionScale: number;
  /** tanh soft-capping of attention scores and of the final logits (gemma2), or null. */
  attnSoftcap: number | null;
  finalSoftcap: number | null;
  /** Leading dims of each head that rotary turns (Phi-3's partial_rotary_factor); the rest pass through. */
  rotaryDim: number;
  /** Per layer. */
  layerKinds: readonly LayerKind[];
  /** The window of "sliding" layers, or null when none slides. */
  slidingWindow: number | null;
  /** Per layer, the rope table it reads: 0, or 1 for gemma3's local layers (rope_local_base_freq). */
  layerRope: readonly number[];
}

/** The llama shape's math for a spec's sizes. */
export function llamaMath(numLayers: number, headDim: number): DecoderMath {
  return {
    normPlusOne: false,
    sandwichNorms: false,
    qkNorm: false,
    embedScale: 1,
    activation: "silu",
    attentionScale: headDim ** -0.5,
    attnSoftcap: null,
    finalSoftcap: null,
    rotaryDim: headDim,
    layerKinds: Array.from({ length: numLayers }, () => "full" as const),
    slidingWindow: null,
    layerRope: Array.from({ length: numLayers }, () => 0),
  };
}

/** Which rope tables and masks the graph reads: the engine feeds exactly these. */
export function stepInputsOf(spec: DecoderSpec): { ropes: number[]; masks: LayerKind[] } {
  return {
    ropes: [...new Set(spec.math.layerRope)].sort(),
    masks: (["full", "sliding"] as const).filter((k) => spec.math.layerKinds.includes(k)),
  };
}

export interface DecoderSpec {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  /** Which linears carry a bias (qwen2: q, k, v). */
  biased: ReadonlySet<LinearName>;
  /** The linears of one layer, in the family's order (phi3: qkv_proj, o_proj, gate_up_proj, down_proj). */
  linears: readonly LinearName[];
  math: DecoderMath;
}

/** HF weights by name (e.g. "model.layers.0.self_attn.q_proj.weight"), decoded to float32. */
export interface WeightSource {
  get(name: string): Float32Array;
}

export interface DecoderOptions {
  /** LoRA inputs, or null for a plain graph (e.g. merged weights). */
  lora: LoraLayout | null;
  /**
   * Also output present K/V = past ++ new ([B, KVH, P + T, D]), for devices that keep the cache resident
   * between steps (WebGPU: fed back as the next past without a host round trip). Costs a cache copy per step.
   */
  presentOutputs: boolean;
  /**
   * RMSNorm as one fused node (layers.ts `fusedRmsNorm`) instead of primitive ops: fewer dispatches, which
   * is what WebGPU pays for. Same math; default false.
   */
  fusedOps?: boolean;
}

export interface LoraLayout {
  /** Adapter slots 1..maxSlots (slot 0 = no adapter). */
  maxSlots: number;
  maxRank: number;
  /** The linears that get LoRA inputs. */
  modules: readonly LinearName[];
  /**
   * How rows reach their adapter (layers.ts `LinearTensors`): "gather" (default) copies each row's A and B
   * out of per-slot stacks; "dense" multiplies by all slots' concatenated stacks and masks other slots out.
   */
  path?: LoraPath;
}

export type LoraPath = "gather" | "dense";

/** Graph input names, shared by the engine that feeds them. */
export const io = {
  inputIds: "input_ids",
  slotIds: "slot_ids",
  slotMask: "slot_mask",
  cos: "rope_cos",
  sin: "rope_sin",
  bias: "attn_bias",
  /** Rope table r > 0 (gemma3's local layers: 1). */
  cosOf: (r: number) => (r === 0 ? "rope_cos" : `rope_cos.${r}`),
  sinOf: (r: number) => (r === 0 ? "rope_sin" : `rope_sin.${r}`),
  /** The mask of sliding-window layers. */
  biasOf: (kind: LayerKind) => (kind === "full" ? "attn_bias" : "attn_bias_sliding"),
  logits: "logits",
  pastKey: (l: number) => `past_key.${l}`,
  pastValue: (l: number) => `past_value.${l}`,
  newKey: (l: number) => `new_key.${l}`,
  newValue: (l: number) => `new_value.${l}`,
  presentKey: (l: number) => `present_key.${l}`,
  presentValue: (l: number) => `present_value.${l}`,
  loraA: (l: number, m: LinearName) => `lora_a.${l}.${m}`,
  loraB: (l: number, m: LinearName) => `lora_b.${l}.${m}`,
};

export function linearShape(spec: DecoderSpec, m: LinearName): { inFeatures: number; outFeatures: number } {
  const q = spec.numHeads * spec.headDim;
  const kv = spec.numKvHeads * spec.headDim;
  const shapes: Record<LinearName, [number, number]> = {
    q_proj: [spec.hiddenSize, q],
    k_proj: [spec.hiddenSize, kv],
    v_proj: [spec.hiddenSize, kv],
    o_proj: [q, spec.hiddenSize],
    gate_proj: [spec.hiddenSize, spec.intermediateSize],
    up_proj: [spec.hiddenSize, spec.intermediateSize],
    down_proj: [spec.intermediateSize, spec.hiddenSize],
    qkv_proj: [spec.hiddenSize, q + 2 * kv],
    gate_up_proj: [spec.hiddenSize, 2 * spec.intermediateSize],
  };
  const [inFeatures, outFeatures] = shapes[m];
  return { inFeatures, outFeatures };
}

export function moduleName(layer: number, m: LinearName): string {
  return `model.layers.${layer}.${PARENT[m]}.${m}`;
}

/** W: [out, in] (HF layout) → [in, out], the right operand of MatMul. */
export function transposeMatrix(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c] as number;
  }
  return out;
}

function linearTensors(
  g: GraphBuilder,
  spec: DecoderSpec,
  weights: WeightSource,
  layer: number,
  m: LinearName,
  lora: LoraLayout | null,
  slotMask: string | null,
): LinearTensors {
  const name = moduleName(layer, m);
  const { inFeatures, outFeatures } = linearShape(spec, m);
  const weightT = g.initializer(`${name}.weight_t`, "float32", [inFeatures, outFeatures], () =>
    transposeMatrix(weights.get(`${name}.weight`), outFeatures, inFeatures),
  );
  const bias = spec.biased.has(m)
    ? g.initializer(`${name}.bias`, "float32", [outFeatures], () => weights.get(`${name}.bias`))
    : undefined;
  if (!lora?.modules.includes(m)) return { weightT, bias };
  if (slotMask) {
    const columns = lora.maxSlots * lora.maxRank;
    const a = g.input(io.loraA(layer, m), "float32", [inFeatures, columns]);
    const b = g.input(io.loraB(layer, m), "float32", [columns, outFeatures]);
    return { weightT, bias, lora: { a, b, mask: slotMask } };
  }
  const a = g.input(io.loraA(layer, m), "float32", [lora.maxSlots + 1, inFeatures, lora.maxRank]);
  const b = g.input(io.loraB(layer, m), "float32", [lora.maxSlots + 1, lora.maxRank, outFeatures]);
  return { weightT, bias, lora: { a, b } };
}

function norm(g: GraphBuilder, weights: WeightSource, name: string, size: number, plusOne = false): string {
  // Gemma's (1 + w), added once here in float32 as HF's `1.0 + self.weight.float()` is.
  return g.initializer(name, "float32", [size], () =>
    plusOne ? weights.get(name).map((w) => Math.fround(1 + w)) : weights.get(name),
  );
}

interface LayerInputs {
  /** Per rope table, [B, T, 1, rotaryDim]. */
  cos: string[];
  sin: string[];
  /** Per layer kind, the tiled mask. */
  bias: Partial<Record<LayerKind, string>>;
  slotIds: string | null;
  slotMask: string | null;
  lora: LoraLayout | null;
  present: boolean;
  norm: typeof rmsNorm;
}

/** Splits the last axis of `x` into consecutive parts of these widths. */
function splitLast(g: GraphBuilder, x: string, widths: number[]): string[] {
  return g.node("Split", [x, g.constant("int64", widths)], { axis: { i: -1 } }, widths.length);
}

function projections(
  g: GraphBuilder,
  spec: DecoderSpec,
  x: string,
  t: (m: LinearName) => LinearTensors,
  slotIds: string | null,
): { q: string; k: string; v: string } {
  if (!spec.linears.includes("qkv_proj")) {
    return {
      q: linear(g, x, t("q_proj"), slotIds),
      k: linear(g, x, t("k_proj"), slotIds),
      v: linear(g, x, t("v_proj"), slotIds),
    };
  }
  const q = spec.numHeads * spec.headDim;
  const kv = spec.numKvHeads * spec.headDim;
  const [qs, ks, vs] = splitLast(g, linear(g, x, t("qkv_proj"), slotIds), [q, kv, kv]) as [
    string,
    string,
    string,
  ];
  return { q: qs, k: ks, v: vs };
}

function mlp(
  g: GraphBuilder,
  spec: DecoderSpec,
  x: string,
  t: (m: LinearName) => LinearTensors,
  slotIds: string | null,
): string {
  const activation = spec.math.activation;
  if (spec.linears.includes("gate_up_proj")) {
    const i = spec.intermediateSize;
    const [gate, up] = splitLast(g, linear(g, x, t("gate_up_proj"), slotIds), [i, i]) as [string, string];
    return gatedMlp(g, gate, up, t("down_proj"), slotIds, activation);
  }
  if (activation === "silu") {
    return swiGlu(g, x, { gate: t("gate_proj"), up: t("up_proj"), down: t("down_proj") }, slotIds);
  }
  const gate = linear(g, x, t("gate_proj"), slotIds);
  return gatedMlp(g, gate, linear(g, x, t("up_proj"), slotIds), t("down_proj"), slotIds, activation);
}

function decoderLayer(
  g: GraphBuilder,
  spec: DecoderSpec,
  weights: WeightSource,
  layer: number,
  hidden: string,
  inputs: LayerInputs,
): string {
  const t = (m: LinearName) => linearTensors(g, spec, weights, layer, m, inputs.lora, inputs.slotMask);
  const prefix = `model.layers.${layer}`;
  const m = spec.math;
  const layerNorm = (x: string, name: string, size = spec.hiddenSize) =>
    inputs.norm(g, x, norm(g, weights, `${prefix}.${name}.weight`, size, m.normPlusOne), spec.rmsNormEps);
  const x = layerNorm(hidden, "input_layernorm");
  const qkv = projections(g, spec, x, t, inputs.slotIds);
  const kvDims = ["batch", spec.numKvHeads, "capacity", spec.headDim];
  const pastKey = g.input(io.pastKey(layer), "float32", kvDims);
  const pastValue = g.input(io.pastValue(layer), "float32", kvDims);
  const rope = m.layerRope[layer] ?? 0;
  const kind = m.layerKinds[layer] ?? "full";
  const math: AttentionMath = {
    scale: m.attentionScale,
    softcap: m.attnSoftcap,
    rotaryDim: m.rotaryDim,
    ...(m.qkNorm
      ? {
          qNorm: (q: string) => layerNorm(q, "self_attn.q_norm", spec.headDim),
          kNorm: (k: string) => layerNorm(k, "self_attn.k_norm", spec.headDim),
        }
      : {}),
  };
  const attn = groupedAttention(
    g,
    qkv,
    spec,
    {
      cos: inputs.cos[rope] as string,
      sin: inputs.sin[rope] as string,
      bias: inputs.bias[kind] as string,
      pastKey,
      pastValue,
    },
    math,
  );
  const newDims = ["batch", spec.numKvHeads, "seq", spec.headDim];
  if (inputs.present) {
    const presentDims = ["batch", spec.numKvHeads, "present", spec.headDim];
    g.output(io.presentKey(layer), concat(g, [pastKey, attn.newKey], 2), "float32", presentDims);
    g.output(io.presentValue(layer), concat(g, [pastValue, attn.newValue], 2), "float32", presentDims);
  }
  g.output(io.newKey(layer), attn.newKey, "float32", newDims);
  g.output(io.newValue(layer), attn.newValue, "float32", newDims);
  const attnOut = linear(g, attn.out, t("o_proj"), inputs.slotIds);
  if (m.sandwichNorms) {
    const afterAttn = add(g, hidden, layerNorm(attnOut, "post_attention_layernorm"));
    const mlpOut = mlp(g, spec, layerNorm(afterAttn, "pre_feedforward_layernorm"), t, inputs.slotIds);
    return add(g, afterAttn, layerNorm(mlpOut, "post_feedforward_layernorm"));
  }
  const afterAttn = add(g, hidden, attnOut);
  return add(g, afterAttn, mlp(g, spec, layerNorm(afterAttn, "post_attention_layernorm"), t, inputs.slotIds));
}

export function buildLlamaDecoder(
  spec: DecoderSpec,
  weights: WeightSource,
  options: DecoderOptions,
): GraphBuilder {
  const lora = options.lora;
  const g = new GraphBuilder();
  const ids = g.input(io.inputIds, "int64", ["batch", "seq"]);
  const dense = lora?.path === "dense";
  const slotIds = lora && !dense ? g.input(io.slotIds, "int64", ["batch"]) : null;
  const slotMask =
    lora && dense ? g.input(io.slotMask, "float32", ["batch", 1, lora.maxSlots * lora.maxRank]) : null;
  const used = stepInputsOf(spec);
  const cos: string[] = [];
  const sin: string[] = [];
  for (const r of used.ropes) {
    const dims = ["batch", "seq", spec.math.rotaryDim];
    cos[r] = unsqueeze(g, g.input(io.cosOf(r), "float32", dims), [2]); // [B, T, 1, rotaryDim]
    sin[r] = unsqueeze(g, g.input(io.sinOf(r), "float32", dims), [2]);
  }
  const bias: Partial<Record<LayerKind, string>> = {};
  for (const kind of used.masks) {
    const input = g.input(io.biasOf(kind), "float32", ["batch", "seq", "capacity_plus_seq"]);
    bias[kind] = groupMask(g, input, spec.numHeads / spec.numKvHeads); // [B, 1, G·T, C + T]
  }
  const inputs: LayerInputs = {
    cos,
    sin,
    bias,
    slotIds,
    slotMask,
    lora,
    present: options.presentOutputs,
    norm: options.fusedOps ? fusedRmsNorm : rmsNorm,
  };
  const embedName = "model.embed_tokens.weight";
  const embed = g.initializer(embedName, "float32", [spec.vocabSize, spec.hiddenSize], () =>
    weights.get(embedName),
  );
  let hidden = gather(g, embed, ids); // [B, T, hidden]
  if (spec.math.embedScale !== 1) hidden = mul(g, hidden, scalar(g, spec.math.embedScale));
  for (let layer = 0; layer < spec.numLayers; layer++) {
    hidden = g.scope(`layers.${layer}`, () => decoderLayer(g, spec, weights, layer, hidden, inputs));
  }
  // Only each row's last position is projected: rows are left-padded, so that is position T-1.
  const last = reshape(g, slice(g, hidden, [-1], [SLICE_END], [1]), [0, -1]); // [B, hidden]
  const normed = inputs.norm(
    g,
    last,
    norm(g, weights, "model.norm.weight", spec.hiddenSize, spec.math.normPlusOne),
    spec.rmsNormEps,
  );
  const head = spec.tieWordEmbeddings
    ? embed
    : g.initializer("lm_head.weight", "float32", [spec.vocabSize, spec.hiddenSize], () =>
        weights.get("lm_head.weight"),
      );
  const logits = gemm(g, normed, head, true);
  const capped = spec.math.finalSoftcap === null ? logits : softcap(g, logits, spec.math.finalSoftcap);
  g.output(io.logits, capped, "float32", ["batch", spec.vocabSize]);
  return g;
}
