// The llama-family decoder built from onnxruntime's fused contrib ops, the way its generative-model path runs
// on WebGPU: GroupQueryAttention with rotary inside and a KV buffer of fixed capacity that the op updates in
// place, SkipSimplifiedLayerNormalization for residual + RMSNorm, q/k/v and gate/up as one MatMul each.
// Every kernel costs host time on WebGPU whatever its size, so the count per step is what this graph cuts
// (docs/decisions/0006-fused-webgpu-decoder.md). Weights, activations, LoRA stacks and the cache are
// `precision` (float16 on WebGPU); logits leave as float32.
//
// Rows are lanes of a fixed batch: lane b holds one sequence's cache in [b, :, 0..len) of every layer's
// buffer. A step feeds S tokens per lane (right-padded); GQA writes them at [seqlens_k[b] + 1 - S, ...) for
// decode steps (S = 1) and at [0, S) for a first prompt (every lane starting empty). `logit_rows` picks the
// flattened [B·S] positions whose logits the step returns.
import type { DecoderSpec, LinearName, LoraLayout, WeightSource } from "./llama-decoder.ts";
import { linearShape, moduleName, transposeMatrix } from "./llama-decoder.ts";
import { GraphBuilder } from "./graph-builder.ts";
import { MS_DOMAIN } from "./onnx-proto.ts";
import { INT4_BLOCK, type Int4Weight, quantizeInt4 } from "./int4.ts";
import { add, cast, gather, matMul, mul, reshape, sigmoid, transpose } from "./ops.ts";
import { toFloat16 } from "../float16.ts";
import type { Rope } from "../model/rope.ts";
import { writeCosSin } from "../model/rope.ts";

export type Precision = "float32" | "float16";

export interface FusedDecoderOptions {
  precision: Precision;
  /** Dense LoRA layout (A_cat [in, S·R], B_cat [S·R, out], one slot mask per lane), or null. */
  lora: LoraLayout | null;
  /** Positions each lane's cache holds (the KV buffers' third dim and the rotary tables' length). */
  capacity: number;
  rope: Rope;
  /**
   * "int4": the base linears as MatMulNBits (4-bit, block 32, asymmetric, onnx/int4.ts), adapters and
   * everything else at `precision`, as QLoRA-trained adapters are served. Embeddings and the head stay.
   */
  quantize?: "int4" | null;
  /**
   * Split-K for the decode step's skinny products (`splitKFactor`): x·W as s partial products over slices
   * of K, summed. WebGPU's MatMul tiles the output 32×32 per workgroup, so with 32 rows a narrow W gets a
   * few dozen workgroups that each walk all of K; splitting multiplies them by s. The graph then takes
   * `rows_shape` ([B, S, -1]) to restore the rows' shape. docs/decisions/0006-fused-webgpu-decoder.md.
   * A number is the smallest slice of K (default 128), so small test models split too.
   */
  splitK?: boolean | number;
}

/** Rows per output tile of WebGPU's MatMul, and the workgroups a product should reach before it stops splitting. */
const TILE = 32;
const TARGET_WORKGROUPS = 256;
const MIN_SLICE = 128;

/** How many slices of K a [rows≤32, K]·[K, N] product is split into (1: not split). */
export function splitKFactor(k: number, n: number, minSlice = MIN_SLICE): number {
  let s = 1;
  while (Math.ceil(n / TILE) * s < TARGET_WORKGROUPS && k % (2 * s) === 0 && k / (2 * s) >= minSlice) s *= 2;
  return s;
}

export const fusedIo = {
  inputIds: "input_ids",
  seqlensK: "seqlens_k",
  totalLength: "total_sequence_length",
  attentionBias: "attention_bias",
  logitRows: "logit_rows",
  logits: "logits",
  pastKey: (l: number) => `past_key.${l}`,
  pastValue: (l: number) => `past_value.${l}`,
  presentKey: (l: number) => `present_key.${l}`,
  presentValue: (l: number) => `present_value.${l}`,
  /** A group's adapted A stacks side by side: [in, n·S·R]. */
  loraA: (l: number, group: string) => `lora_a.${l}.${group}`,
  /** A group's B stacks block-diagonal over its columns: [n·S·R, Σ out]. */
  loraB: (l: number, group: string) => `lora_b.${l}.${group}`,
  /** The slot mask repeated n times, for a group with n adapted linears: [rows, 1, n·S·R]. */
  slotMaskTimes: (n: number) => `slot_mask.x${n}`,
  /** [B, S, -1] (int64, host memory): the rows' shape, which split-K products are reshaped back to. */
  rowsShape: "rows_shape",
};

/** The linears each fused MatMul computes, in column order, and the name of their LoRA inputs. */
export const FUSED_GROUPS: readonly { name: string; label: string; modules: readonly LinearName[] }[] = [
  { name: "qkv_proj", label: "self_attn.qkv_proj", modules: ["q_proj", "k_proj", "v_proj"] },
  { name: "o_proj", label: "self_attn.o_proj", modules: ["o_proj"] },
  { name: "gate_up_proj", label: "mlp.gate_up_proj", modules: ["gate_proj", "up_proj"] },
  { name: "down_proj", label: "mlp.down_proj", modules: ["down_proj"] },
];

/** How many of a group's linears carry LoRA stacks. */
export function adaptedCount(group: (typeof FUSED_GROUPS)[number], modules: readonly LinearName[]): number {
  return group.modules.filter((m) => modules.includes(m)).length;
}

/** The slot-mask repetitions the graph takes as inputs (one per distinct adapted count). */
export function slotMaskTimes(lora: LoraLayout): number[] {
  const counts = new Set(FUSED_GROUPS.map((g) => adaptedCount(g, lora.modules)).filter((n) => n > 0));
  return [...counts].sort((a, b) => a - b);
}

interface StackFeed {
  name: string;
  dims: number[];
  data: Float32Array;
}

/**
 * The per-linear dense stacks (lora-slots.ts: A [in, S·R], B [S·R, out] under the primitive graph's names)
 * regrouped as the fused graph takes them: one A [in, n·S·R] and one block-diagonal B [n·S·R, Σ out] per
 * group, so a group's adapters cost one MatMul, one Mul, one MatMul and one Add whatever n is.
 */
export function groupLoraStacks(spec: DecoderSpec, lora: LoraLayout, stacks: StackFeed[]): StackFeed[] {
  const byName = new Map(stacks.map((f) => [f.name, f.data]));
  const columns = lora.maxSlots * lora.maxRank;
  const out: StackFeed[] = [];
  for (let layer = 0; layer < spec.numLayers; layer++) {
    for (const group of FUSED_GROUPS) {
      const adapted = group.modules.filter((m) => lora.modules.includes(m));
      if (adapted.length === 0) continue;
      const { inFeatures } = linearShape(spec, group.modules[0] as LinearName);
      const widths = group.modules.map((m) => linearShape(spec, m).outFeatures);
      const total = widths.reduce((a, b) => a + b, 0);
      const n = adapted.length;
      const a = new Float32Array(inFeatures * n * columns);
      const b = new Float32Array(n * columns * total);
      adapted.forEach((m, k) => {
        const aM = byName.get(`lora_a.${layer}.${m}`) as Float32Array;
        const bM = byName.get(`lora_b.${layer}.${m}`) as Float32Array;
        for (let i = 0; i < inFeatures; i++) {
          a.set(aM.subarray(i * columns, (i + 1) * columns), (i * n + k) * columns);
        }
        const index = group.modules.indexOf(m);
        const offset = widths.slice(0, index).reduce((x, y) => x + y, 0);
        const width = widths[index] as number;
        for (let j = 0; j < columns; j++) {
          b.set(bM.subarray(j * width, (j + 1) * width), (k * columns + j) * total + offset);
        }
      });
      out.push({ name: fusedIo.loraA(layer, group.name), dims: [inFeatures, n * columns], data: a });
      out.push({ name: fusedIo.loraB(layer, group.name), dims: [n * columns, total], data: b });
    }
  }
  return out;
}

/** GQA's rotary needs a head size that is a multiple of 16 (its cos/sin tables' width a multiple of 8). */
export function fusedDecoderSupports(spec: DecoderSpec): string | null {
  if (spec.headDim % 16 !== 0)
    return `head_dim must be a multiple of 16 for GroupQueryAttention; got ${spec.headDim}`;
  if (spec.numHeads % spec.numKvHeads !== 0)
    return "num_attention_heads must be a multiple of num_key_value_heads";
  return null;
}

function convert(data: Float32Array, precision: Precision): Float32Array | Uint16Array {
  return precision === "float16" ? toFloat16(data) : data;
}

/** Columns side by side: parts [in, out_i] (row-major) → [in, Σ out_i]. */
function joinColumns(parts: Float32Array[], rows: number): Float32Array {
  const widths = parts.map((p) => p.length / rows);
  const total = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * total);
  for (let r = 0; r < rows; r++) {
    let offset = r * total;
    parts.forEach((p, i) => {
      const w = widths[i] as number;
      out.set(p.subarray(r * w, (r + 1) * w), offset);
      offset += w;
    });
  }
  return out;
}

/** HF's cos/sin for positions 0..capacity-1, first half only ([capacity, D/2]), as GQA's rotary reads them. */
export function rotaryTables(
  rope: Rope,
  headDim: number,
  capacity: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const fullCos = new Float32Array(headDim);
  const fullSin = new Float32Array(headDim);
  const cos = new Float32Array(capacity * half);
  const sin = new Float32Array(capacity * half);
  for (let p = 0; p < capacity; p++) {
    writeCosSin(rope, p, fullCos, fullSin, 0);
    cos.set(fullCos.subarray(0, half), p * half);
    sin.set(fullSin.subarray(0, half), p * half);
  }
  return { cos, sin };
}

interface Ctx {
  g: GraphBuilder;
  spec: DecoderSpec;
  weights: WeightSource;
  o: FusedDecoderOptions;
  /** The slot mask inputs by repetition count (`slotMaskTimes`). */
  slotMasks: Map<number, string>;
  /** Split-K: the `rows_shape` input, and each input's [s, rows, K/s] view by `${input}|${s}`. */
  split: { rowsShape: string; views: Map<string, string>; minSlice: number } | null;
}

/** x·w, split over K where `splitKFactor` says so: w [K, N] read as [s, K/s, N] (the same bytes). */
function product(c: Ctx, x: string, w: string, k: number, n: number): string {
  const { g } = c;
  const s = c.split ? splitKFactor(k, n, c.split.minSlice) : 1;
  if (!c.split || s === 1) return matMul(g, x, w);
  const split = c.split;
  const key = `${x}|${s}`;
  let view = split.views.get(key);
  if (!view) {
    view = transpose(g, reshape(g, x, [-1, s, k / s]), [1, 0, 2]);
    split.views.set(key, view);
  }
  const w3 = reshape(g, w, [s, k / s, n]);
  const summed = g.op("ReduceSum", [matMul(g, view, w3), g.constant("int64", [0])], { keepdims: { i: 0 } });
  return g.op("Reshape", [summed, split.rowsShape]);
}

/** One MatMul over several linears that read the same input: W_i^T side by side, biases likewise. */
function fusedLinear(c: Ctx, layer: number, groupName: string, x: string): string {
  const { spec, o } = c;
  const fused = FUSED_GROUPS.find((f) => f.name === groupName) as (typeof FUSED_GROUPS)[number];
  const group = [...fused.modules];
  const label = fused.label;
  const { inFeatures } = linearShape(spec, group[0] as LinearName);
  const widths = group.map((m) => linearShape(spec, m).outFeatures);
  const total = widths.reduce((a, b) => a + b, 0);
  const y =
    o.quantize === "int4"
      ? int4Linear(c, layer, group, x, label, inFeatures, total)
      : plainLinear(c, layer, group, x, label, inFeatures, widths, total);
  return addLora(c, layer, fused, total, x, withBias(c, layer, group, widths, total, label, y));
}

function plainLinear(
  c: Ctx,
  layer: number,
  group: LinearName[],
  x: string,
  label: string,
  inFeatures: number,
  widths: number[],
  total: number,
): string {
  const { g, weights, o } = c;
  const weight = g.initializer(
    `model.layers.${layer}.${label}.weight_t`,
    o.precision,
    [inFeatures, total],
    () =>
      convert(
        joinColumns(
          group.map((m, i) =>
            transposeMatrix(weights.get(`${moduleName(layer, m)}.weight`), widths[i] as number, inFeatures),
          ),
          inFeatures,
        ),
        o.precision,
      ),
  );
  return product(c, x, weight, inFeatures, total);
}

/** The group's HF weights stacked as rows ([Σ out, in], MatMulNBits' [N, K]), quantized once on demand. */
function int4Linear(
  c: Ctx,
  layer: number,
  group: LinearName[],
  x: string,
  label: string,
  inFeatures: number,
  total: number,
): string {
  const { g, weights, o } = c;
  let cached: Int4Weight | null = null;
  const quantized = () => {
    if (cached) return cached;
    const rows = new Float32Array(total * inFeatures);
    let offset = 0;
    for (const m of group) {
      const w = weights.get(`${moduleName(layer, m)}.weight`);
      rows.set(w, offset);
      offset += w.length;
    }
    cached = quantizeInt4(rows, total, inFeatures);
    return cached;
  };
  const blocks = Math.ceil(inFeatures / INT4_BLOCK);
  const name = `model.layers.${layer}.${label}`;
  const packed = g.initializer(
    `${name}.qweight`,
    "uint8",
    [total, blocks, INT4_BLOCK / 2],
    () => quantized().packed,
  );
  const scales = g.initializer(`${name}.scales`, o.precision, [total * blocks], () =>
    convert(quantized().scales, o.precision),
  );
  const zeroPoints = g.initializer(
    `${name}.qzeros`,
    "uint8",
    [total * Math.ceil(blocks / 2)],
    () => quantized().zeroPoints,
  );
  return g.node(
    "MatMulNBits",
    [x, packed, scales, zeroPoints],
    { K: { i: inFeatures }, N: { i: total }, bits: { i: 4 }, block_size: { i: INT4_BLOCK } },
    1,
    MS_DOMAIN,
  )[0] as string;
}

function withBias(
  c: Ctx,
  layer: number,
  group: LinearName[],
  widths: number[],
  total: number,
  label: string,
  y: string,
): string {
  const { g, spec, weights, o } = c;
  if (group.some((m) => spec.biased.has(m))) {
    const bias = g.initializer(`model.layers.${layer}.${label}.bias`, o.precision, [total], () => {
      const out = new Float32Array(total);
      let offset = 0;
      group.forEach((m, i) => {
        if (spec.biased.has(m)) out.set(weights.get(`${moduleName(layer, m)}.bias`), offset);
        offset += widths[i] as number;
      });
      return convert(out, o.precision);
    });
    return add(g, y, bias);
  }
  return y;
}

/** y + ((x·A_g) ⊙ mask)·B_g: the group's adapted linears in one product (`groupLoraStacks`). */
function addLora(
  c: Ctx,
  layer: number,
  group: (typeof FUSED_GROUPS)[number],
  total: number,
  x: string,
  y: string,
): string {
  const { g, o } = c;
  const lora = o.lora;
  if (!lora) return y;
  const n = adaptedCount(group, lora.modules);
  if (n === 0) return y;
  const columns = n * lora.maxSlots * lora.maxRank;
  const { inFeatures } = linearShape(c.spec, group.modules[0] as LinearName);
  const a = g.input(fusedIo.loraA(layer, group.name), o.precision, [inFeatures, columns]);
  const b = g.input(fusedIo.loraB(layer, group.name), o.precision, [columns, total]);
  return g.scope(`lora.${group.name}`, () =>
    add(g, y, matMul(g, mul(g, product(c, x, a, inFeatures, columns), c.slotMasks.get(n) as string), b)),
  );
}

function normWeight(c: Ctx, name: string): string {
  return c.g.initializer(name, c.o.precision, [c.spec.hiddenSize], () =>
    convert(c.weights.get(name), c.o.precision),
  );
}

/** residual + delta, then RMSNorm: returns [normed, the sum] (the sum is the next residual). */
function skipNorm(c: Ctx, residual: string, delta: string, weight: string): [string, string] {
  const [normed, , , sum] = c.g.node(
    "SkipSimplifiedLayerNormalization",
    [residual, delta, weight],
    { epsilon: { f: c.spec.rmsNormEps } },
    4,
    MS_DOMAIN,
  );
  return [normed as string, sum as string];
}

function norm(c: Ctx, x: string, weight: string): string {
  return c.g.op("SimplifiedLayerNormalization", [x, weight], {
    axis: { i: -1 },
    epsilon: { f: c.spec.rmsNormEps },
    stash_type: { i: 1 },
  });
}

export function buildFusedDecoder(
  spec: DecoderSpec,
  weights: WeightSource,
  o: FusedDecoderOptions,
): GraphBuilder {
  const unsupported = fusedDecoderSupports(spec);
  if (unsupported) throw new Error(`fused decoder: ${unsupported}`);
  const g = new GraphBuilder();
  const t = o.precision;
  const ids = g.input(fusedIo.inputIds, "int64", ["batch", "seq"]);
  const seqlens = g.input(fusedIo.seqlensK, "int32", ["batch"]);
  const totalLength = g.input(fusedIo.totalLength, "int32", []);
  const logitRows = g.input(fusedIo.logitRows, "int64", ["rows"]);
  // Added to every lane's attention scores: WebGPU's attention reads every lane up to the batch's total
  // length, so positions past a lane's own length are masked here (docs/decisions/0006-fused-webgpu-decoder.md).
  const attnBias = g.input(fusedIo.attentionBias, t, ["batch", 1, "seq", "total"]);
  const slotMasks = new Map<number, string>();
  for (const n of o.lora ? slotMaskTimes(o.lora) : []) {
    const columns = n * (o.lora as LoraLayout).maxSlots * (o.lora as LoraLayout).maxRank;
    slotMasks.set(n, g.input(fusedIo.slotMaskTimes(n), t, ["batch", 1, columns]));
  }
  const split = o.splitK
    ? {
        rowsShape: g.input(fusedIo.rowsShape, "int64", [3]),
        views: new Map<string, string>(),
        minSlice: typeof o.splitK === "number" ? o.splitK : MIN_SLICE,
      }
    : null;
  const c: Ctx = { g, spec, weights, o, slotMasks, split };
  const tables = rotaryTables(o.rope, spec.headDim, o.capacity);
  const half = spec.headDim / 2;
  const cosCache = g.initializer("rope_cos_cache", t, [o.capacity, half], () => convert(tables.cos, t));
  const sinCache = g.initializer("rope_sin_cache", t, [o.capacity, half], () => convert(tables.sin, t));
  const embedName = "model.embed_tokens.weight";
  const embed = g.initializer(embedName, t, [spec.vocabSize, spec.hiddenSize], () =>
    convert(weights.get(embedName), t),
  );
  let residual = gather(g, embed, ids); // [B, S, hidden]
  let delta: string | null = null;
  const kvDims = ["batch", spec.numKvHeads, o.capacity, spec.headDim];
  for (let layer = 0; layer < spec.numLayers; layer++) {
    g.scope(`layers.${layer}`, () => {
      const prefix = `model.layers.${layer}`;
      const inNorm = normWeight(c, `${prefix}.input_layernorm.weight`);
      let x: string;
      if (delta === null) x = norm(c, residual, inNorm);
      else [x, residual] = skipNorm(c, residual, delta, inNorm);
      const qkv = fusedLinear(c, layer, "qkv_proj", x);
      const pastKey = g.input(fusedIo.pastKey(layer), t, kvDims);
      const pastValue = g.input(fusedIo.pastValue(layer), t, kvDims);
      const [attn, presentKey, presentValue] = g.node(
        "GroupQueryAttention",
        [qkv, "", "", pastKey, pastValue, seqlens, totalLength, cosCache, sinCache, "", attnBias],
        {
          num_heads: { i: spec.numHeads },
          kv_num_heads: { i: spec.numKvHeads },
          do_rotary: { i: 1 },
          rotary_interleaved: { i: 0 },
        },
        3,
        MS_DOMAIN,
      ) as [string, string, string];
      g.output(fusedIo.presentKey(layer), presentKey, t, kvDims);
      g.output(fusedIo.presentValue(layer), presentValue, t, kvDims);
      const o2 = fusedLinear(c, layer, "o_proj", attn);
      const [x2, afterAttn] = skipNorm(
        c,
        residual,
        o2,
        normWeight(c, `${prefix}.post_attention_layernorm.weight`),
      );
      residual = afterAttn;
      delta = g.scope("mlp", () => {
        const gateUp = fusedLinear(c, layer, "gate_up_proj", x2);
        const [gate, up] = g.node(
          "Split",
          [gateUp, g.constant("int64", [spec.intermediateSize, spec.intermediateSize])],
          { axis: { i: -1 } },
          2,
        ) as [string, string];
        const act = mul(g, mul(g, gate, sigmoid(g, gate)), up);
        return fusedLinear(c, layer, "down_proj", act);
      });
    });
  }
  const [normed] = skipNorm(c, residual, delta as unknown as string, normWeight(c, "model.norm.weight"));
  const picked = gather(g, reshape(g, normed, [-1, spec.hiddenSize]), logitRows); // [R, hidden]
  const headSource = spec.tieWordEmbeddings ? embedName : "lm_head.weight";
  const head = g.initializer("lm_head.weight_t", t, [spec.hiddenSize, spec.vocabSize], () =>
    convert(transposeMatrix(weights.get(headSource), spec.vocabSize, spec.hiddenSize), t),
  );
  const logits = matMul(g, picked, head);
  g.output(fusedIo.logits, t === "float16" ? cast(g, logits, 1) : logits, "float32", [
    "rows",
    spec.vocabSize,
  ]);
  return g;
}
