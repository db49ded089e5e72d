// The llama-family decoder (llama, mistral, qwen2 share it: pre-norm RMSNorm, rotary GQA, SwiGLU MLP) as an
// ONNX graph with a KV cache and multi-LoRA slots. One graph serves prefill and decode: T new tokens per row
// on top of a cache of C positions per row that the graph reads (the engine appends the returned new K/V),
// rows left-padded to a common T, padding and unused cache positions removed by the additive mask.
import type { LinearKind } from "../../../src/contracts/base-model.ts";
import { GraphBuilder } from "./graph-builder.ts";
import {
  fusedRmsNorm,
  groupedAttention,
  groupMask,
  type LinearTensors,
  linear,
  rmsNorm,
  swiGlu,
} from "./layers.ts";
import { add, concat, gather, gemm, reshape, SLICE_END, slice, unsqueeze } from "./ops.ts";

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
};

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

function norm(g: GraphBuilder, weights: WeightSource, name: string, size: number): string {
  return g.initializer(name, "float32", [size], () => weights.get(name));
}

function decoderLayer(
  g: GraphBuilder,
  spec: DecoderSpec,
  weights: WeightSource,
  layer: number,
  hidden: string,
  inputs: {
    cos: string;
    sin: string;
    bias: string;
    slotIds: string | null;
    slotMask: string | null;
    lora: LoraLayout | null;
    present: boolean;
    norm: typeof rmsNorm;
  },
): string {
  const t = (m: LinearName) => linearTensors(g, spec, weights, layer, m, inputs.lora, inputs.slotMask);
  const prefix = `model.layers.${layer}`;
  const x = inputs.norm(
    g,
    hidden,
    norm(g, weights, `${prefix}.input_layernorm.weight`, spec.hiddenSize),
    spec.rmsNormEps,
  );
  const qkv = {
    q: linear(g, x, t("q_proj"), inputs.slotIds),
    k: linear(g, x, t("k_proj"), inputs.slotIds),
    v: linear(g, x, t("v_proj"), inputs.slotIds),
  };
  const kvDims = ["batch", spec.numKvHeads, "capacity", spec.headDim];
  const pastKey = g.input(io.pastKey(layer), "float32", kvDims);
  const pastValue = g.input(io.pastValue(layer), "float32", kvDims);
  const attn = groupedAttention(g, qkv, spec, {
    cos: inputs.cos,
    sin: inputs.sin,
    bias: inputs.bias,
    pastKey,
    pastValue,
  });
  const newDims = ["batch", spec.numKvHeads, "seq", spec.headDim];
  if (inputs.present) {
    const presentDims = ["batch", spec.numKvHeads, "present", spec.headDim];
    g.output(io.presentKey(layer), concat(g, [pastKey, attn.newKey], 2), "float32", presentDims);
    g.output(io.presentValue(layer), concat(g, [pastValue, attn.newValue], 2), "float32", presentDims);
  }
  g.output(io.newKey(layer), attn.newKey, "float32", newDims);
  g.output(io.newValue(layer), attn.newValue, "float32", newDims);
  const afterAttn = add(g, hidden, linear(g, attn.out, t("o_proj"), inputs.slotIds));
  const post = norm(g, weights, `${prefix}.post_attention_layernorm.weight`, spec.hiddenSize);
  const mlp = swiGlu(
    g,
    inputs.norm(g, afterAttn, post, spec.rmsNormEps),
    { gate: t("gate_proj"), up: t("up_proj"), down: t("down_proj") },
    inputs.slotIds,
  );
  return add(g, afterAttn, mlp);
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
  const cosIn = g.input(io.cos, "float32", ["batch", "seq", spec.headDim]);
  const sinIn = g.input(io.sin, "float32", ["batch", "seq", spec.headDim]);
  const biasIn = g.input(io.bias, "float32", ["batch", "seq", "capacity_plus_seq"]);
  const inputs = {
    cos: unsqueeze(g, cosIn, [2]), // [B, T, 1, D]
    sin: unsqueeze(g, sinIn, [2]),
    bias: groupMask(g, biasIn, spec.numHeads / spec.numKvHeads), // [B, 1, G·T, C + T]
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
  for (let layer = 0; layer < spec.numLayers; layer++) {
    hidden = g.scope(`layers.${layer}`, () => decoderLayer(g, spec, weights, layer, hidden, inputs));
  }
  // Only each row's last position is projected: rows are left-padded, so that is position T-1.
  const last = reshape(g, slice(g, hidden, [-1], [SLICE_END], [1]), [0, -1]); // [B, hidden]
  const normed = inputs.norm(
    g,
    last,
    norm(g, weights, "model.norm.weight", spec.hiddenSize),
    spec.rmsNormEps,
  );
  const head = spec.tieWordEmbeddings
    ? embed
    : g.initializer("lm_head.weight", "float32", [spec.vocabSize, spec.hiddenSize], () =>
        weights.get("lm_head.weight"),
      );
  g.output(io.logits, gemm(g, normed, head, true), "float32", ["batch", spec.vocabSize]);
  return g;
}
