// Decoder building blocks from primitive ops, following Hugging Face's modeling_llama.py order of
// operations (float32 throughout) so outputs match it within rounding; the other families' pieces follow
// their modeling files (modeling_gemma2.py's soft-capping and GeGLU, modeling_phi3.py's partial rotary).
import type { GraphBuilder } from "./graph-builder.ts";
import {
  add,
  concat,
  div,
  gather,
  matMul,
  mul,
  neg,
  reciprocal,
  reduceMean,
  reshape,
  SLICE_END,
  scalar,
  sigmoid,
  slice,
  softmax,
  sqrt,
  tanh,
  transpose,
  unsqueeze,
} from "./ops.ts";

type G = GraphBuilder;

/** LlamaRMSNorm: w * x / sqrt(mean(x²) + eps) over the last axis. */
export function rmsNorm(g: G, x: string, weight: string, eps: number): string {
  const variance = reduceMean(g, mul(g, x, x), [-1]);
  const inv = reciprocal(g, sqrt(g, add(g, variance, scalar(g, eps))));
  return mul(g, weight, mul(g, x, inv));
}

/**
 * The same RMSNorm as one SimplifiedLayerNormalization node (ORT's contrib op in the default domain, on CPU,
 * WASM and WebGPU): one dispatch instead of seven, for the WebGPU fast path where per-dispatch overhead
 * dominates. Training keeps `rmsNorm`, whose primitive ops the backward-graph emitter differentiates.
 */
export function fusedRmsNorm(g: G, x: string, weight: string, eps: number): string {
  return g.op("SimplifiedLayerNormalization", [x, weight], {
    axis: { i: -1 },
    epsilon: { f: eps },
    stash_type: { i: 1 },
  });
}

/**
 * Rotary embedding in HF's rotate_half form: x·cos + [-x2, x1]·sin.
 * x: [B, T, N, D], cos/sin: [B, T, 1, D] (computed in JS per row position).
 */
export function rotary(g: G, x: string, cos: string, sin: string, headDim: number): string {
  const half = headDim / 2;
  const x1 = slice(g, x, [0], [half], [-1]);
  const x2 = slice(g, x, [half], [SLICE_END], [-1]);
  const rotated = concat(g, [neg(g, x2), x1], -1);
  return add(g, mul(g, x, cos), mul(g, rotated, sin));
}

/**
 * Rotary on the leading `rotaryDim` of each head only (Phi-3's partial_rotary_factor): the rest passes through,
 * as HF's apply_rotary_pos_emb concatenates it back. cos/sin: [B, T, 1, rotaryDim].
 */
export function partialRotary(
  g: G,
  x: string,
  cos: string,
  sin: string,
  headDim: number,
  rotaryDim: number,
): string {
  if (rotaryDim === headDim) return rotary(g, x, cos, sin, headDim);
  const turned = rotary(g, slice(g, x, [0], [rotaryDim], [-1]), cos, sin, rotaryDim);
  return concat(g, [turned, slice(g, x, [rotaryDim], [SLICE_END], [-1])], -1);
}

/** cap · tanh(x / cap): gemma2's soft-capping of attention scores and final logits, in HF's order. */
export function softcap(g: G, x: string, cap: number): string {
  const c = scalar(g, cap);
  return mul(g, tanh(g, div(g, x, c)), c);
}

/** gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), torch's gelu(approximate="tanh"). */
export function geluTanh(g: G, x: string): string {
  const cube = mul(g, mul(g, x, x), x);
  const inner = mul(g, scalar(g, Math.sqrt(2 / Math.PI)), add(g, x, mul(g, scalar(g, 0.044715), cube)));
  return mul(g, mul(g, scalar(g, 0.5), x), add(g, scalar(g, 1), tanh(g, inner)));
}

/**
 * down(act(gate) * up) from gate and up already projected (Phi-3 splits them out of gate_up_proj; HF's
 * `up_states * act(gate)` is the same product).
 */
export function gatedMlp(
  g: G,
  gate: string,
  up: string,
  down: LinearTensors,
  slotIds: string | null,
  activation: "silu" | "gelu_tanh",
): string {
  const act = activation === "silu" ? mul(g, gate, sigmoid(g, gate)) : geluTanh(g, gate);
  return linear(g, mul(g, act, up), down, slotIds);
}

/**
 * A linear's graph-side tensors: weightT: [in, out], bias: [out], and LoRA stacks in one of two layouts:
 * - gather (no `mask`): A: [S+1, in, R], B: [S+1, R, out], slot 0 all zeros, rows pick theirs by slot id;
 * - dense (`mask` set): A_cat: [in, S·R], B_cat: [S·R, out] (slot s owns columns/rows (s-1)·R..s·R-1, slot 0
 *   none) and mask: [B, 1, S·R], 1 on the columns of the row's slot.
 */
export interface LinearTensors {
  weightT: string;
  bias?: string;
  lora?: { a: string; b: string; mask?: string };
}

/**
 * y = x·Wᵀ (+ bias) + (x·A[slot])·B[slot] per row; the adapter scale is folded into B when a slot is
 * written, and slot 0 adds nothing. x: [B, T, in] → [B, T, out]. `slotIds` feeds the gather layout only.
 */
export function linear(g: G, x: string, t: LinearTensors, slotIds: string | null): string {
  let y = matMul(g, x, t.weightT);
  if (t.bias) y = add(g, y, t.bias);
  if (t.lora?.mask) return add(g, y, denseLoraDelta(g, x, t.lora.a, t.lora.b, t.lora.mask));
  if (!t.lora || !slotIds) return y;
  const a = gather(g, t.lora.a, slotIds); // [B, in, R]
  const b = gather(g, t.lora.b, slotIds); // [B, R, out]
  return add(g, y, matMul(g, matMul(g, x, a), b));
}

/**
 * ((x·A_cat) ⊙ mask)·B_cat: every resident adapter's A and B are read once per step by two plain GEMMs
 * (no per-row copies of the stacks, which is what the gather layout pays), at the price of S·R columns
 * whatever the rows' slots. x: [B, T, in], aCat: [in, S·R], mask: [B, 1, S·R], bCat: [S·R, out].
 */
export function denseLoraDelta(g: G, x: string, aCat: string, bCat: string, mask: string): string {
  return matMul(g, mul(g, matMul(g, x, aCat), mask), bCat);
}

/** LlamaMLP: down(silu(gate(x)) * up(x)). */
export function swiGlu(
  g: G,
  x: string,
  t: { gate: LinearTensors; up: LinearTensors; down: LinearTensors },
  slotIds: string | null,
): string {
  const gate = linear(g, x, t.gate, slotIds);
  const silu = mul(g, gate, sigmoid(g, gate));
  return linear(g, mul(g, silu, linear(g, x, t.up, slotIds)), t.down, slotIds);
}

/** The mask [B, T, L] as attention adds it: [B, 1, G·T, L], repeated per query head of a group (g-major). */
export function groupMask(g: G, bias: string, group: number): string {
  return g.op("Tile", [unsqueeze(g, bias, [1]), g.constant("int64", [1, 1, group, 1])]);
}

export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

export interface AttentionIo {
  /** [B, T, 1, D] */
  cos: string;
  sin: string;
  /** Additive mask over past then new positions, tiled over the query group: [B, 1, G·T, C + T]. */
  bias: string;
  /** The cache as fed, [B, KVH, C, D]; positions the mask hides may hold anything. */
  pastKey: string;
  pastValue: string;
}

/** What attention does beyond llama's: its scale, soft-capping, partial rotary and q/k norms. */
export interface AttentionMath {
  /** Multiplies q·k (llama: head_dim^-0.5). */
  scale: number;
  softcap: number | null;
  rotaryDim: number;
  /** Applied to q [B, T, H, D] and k [B, T, KVH, D] before rotary (qwen3, gemma3). */
  qNorm?: (q: string) => string;
  kNorm?: (k: string) => string;
}

/**
 * Grouped-query attention over a cache that the graph only reads. Scores against past and new keys are
 * computed apart and joined (they are small) instead of concatenating the cache with the new keys, which
 * would copy the whole cache every step. Query heads are grouped per KV head, [B, KVH, G·T, D], so each
 * group meets its K/V once with no broadcasting (HF's repeat_kv gives query head kvh·G + g the KV head kvh,
 * which is exactly this reshape). Returns the output [B, T, H·D] and the new rotated K and V [B, KVH, T, D].
 */
export function groupedAttention(
  g: G,
  qkv: { q: string; k: string; v: string },
  s: AttentionShape,
  io: AttentionIo,
  math: AttentionMath = { scale: s.headDim ** -0.5, softcap: null, rotaryDim: s.headDim },
): { out: string; newKey: string; newValue: string } {
  const group = s.numHeads / s.numKvHeads;
  const heads = (x: string, n: number, norm?: (x: string) => string) => {
    const split = reshape(g, x, [0, 0, n, s.headDim]);
    return partialRotary(g, norm ? norm(split) : split, io.cos, io.sin, s.headDim, math.rotaryDim);
  };
  const q = heads(qkv.q, s.numHeads, math.qNorm);
  const k = heads(qkv.k, s.numKvHeads, math.kNorm);
  const newKey = transpose(g, k, [0, 2, 1, 3]); // [B, KVH, T, D]
  const newValue = transpose(g, reshape(g, qkv.v, [0, 0, s.numKvHeads, s.headDim]), [0, 2, 1, 3]);
  const qg = transpose(g, reshape(g, q, [0, 0, s.numKvHeads, group, s.headDim]), [0, 2, 3, 1, 4]); // [B, KVH, G, T, D]
  const qFlat = reshape(g, qg, [0, 0, -1, s.headDim]); // [B, KVH, G·T, D]
  const scale = scalar(g, math.scale);
  const pastScores = matMul(g, qFlat, transpose(g, io.pastKey, [0, 1, 3, 2])); // [B, KVH, G·T, C]
  const newScores = matMul(g, qFlat, transpose(g, newKey, [0, 1, 3, 2])); // [B, KVH, G·T, T]
  const scaled = mul(g, concat(g, [pastScores, newScores], -1), scale); // [B, KVH, G·T, C+T]
  const scores = math.softcap === null ? scaled : softcap(g, scaled, math.softcap);
  const probs = softmax(g, add(g, scores, io.bias), -1);
  const [pastProbs, newProbs] = g.node(
    "Split",
    [probs, splitSizes(g, io.pastKey, newKey)],
    { axis: { i: -1 } },
    2,
  ) as [string, string];
  const ctx = add(g, matMul(g, pastProbs, io.pastValue), matMul(g, newProbs, newValue)); // [B, KVH, G·T, D]
  const grouped = reshape(g, ctx, [0, 0, group, -1, s.headDim]); // [B, KVH, G, T, D]
  const out = reshape(g, transpose(g, grouped, [0, 3, 1, 2, 4]), [0, 0, -1]); // [B, T, H·D]
  return { out, newKey, newValue };
}

/** [C, T] as an int64 tensor, read from the two key tensors' third dims at run time. */
function splitSizes(g: G, pastKey: string, newKey: string): string {
  const dim = (x: string) => slice(g, g.op("Shape", [x]), [2], [3], [0]);
  return concat(g, [dim(pastKey), dim(newKey)], 0);
}
