// The Engine on the fused decoder (onnx/fused-decoder.ts): every sequence owns a lane of a fixed-width
// batch whose KV buffers stay where the device keeps them, updated in place by GroupQueryAttention, so a
// step uploads only token ids, lengths and the slot mask and downloads only the rows' logits.
//
// GroupQueryAttention takes two kinds of step for a batch wider than one: a first prompt (every lane's cache
// empty; rows right-padded, written from position 0) and decode (one token per lane, written at the lane's
// length). A prompt that arrives while other lanes hold caches therefore runs alone, as a first prompt of
// batch 1 on its own buffer, and is merged into its lane on the device; a later chunk of a prompt is fed
// one token per step (docs/decisions/0006-fused-webgpu-decoder.md).
import { AppError } from "../../src/errors.ts";
import { toFloat16 } from "./float16.ts";
import type { LoraFeeds } from "./lora-feeds.ts";
import type { LoraSlots } from "./lora-slots.ts";
import type { HfModel } from "./model/hf-model.ts";
import { fusedIo, type Precision, slotMaskTimes } from "./onnx/fused-decoder.ts";
import { GraphBuilder } from "./onnx/graph-builder.ts";
import type { Ort, OrtTensor, Session } from "./ort-backend.ts";
import { checkStepRows } from "./step-rows.ts";
import type { AdapterWeights, Backend, Device, Engine, ModelInfo, SequenceId, StepRow } from "./types.ts";

export interface FusedEngineParts {
  ort: Ort;
  session: Session;
  /** The lane-merge session (`mergeGraph`), on the same device. */
  merge: Session;
  model: HfModel;
  info: ModelInfo;
  device: Device;
  backend: Backend;
  precision: Precision;
  slots: LoraSlots | null;
  loraFeeds: LoraFeeds | null;
  lanes: number;
  /** Positions per lane's buffers: the longest sequence plus one spare position (see `decodeInputs`). */
  capacity: number;
  maxRank: number;
  profile: boolean;
  /** The graph was built with split-K products and takes `rows_shape` (onnx/fused-decoder.ts). */
  splitK: boolean;
}

interface Lane {
  seq: SequenceId;
  slot: number;
  /** Real tokens cached in this lane. */
  length: number;
}

const MERGE_MASK = "lane_mask";

/**
 * lanes' := where(lane_mask, row, lanes) for every layer's key and value buffers: row [1, KVH, C, D] broadcast
 * over the lanes, lane_mask [lanes, 1, 1, 1] true at the target lane only. Outputs are named as the decode
 * graph's past inputs, so they are fed straight back.
 */
export function mergeGraph(
  layers: number,
  precision: Precision,
  dims: { kvHeads: number; capacity: number; headDim: number },
): GraphBuilder {
  const g = new GraphBuilder();
  const mask = g.input(MERGE_MASK, "bool", ["lanes", 1, 1, 1]);
  const laneDims = ["lanes", dims.kvHeads, dims.capacity, dims.headDim];
  for (let l = 0; l < layers; l++) {
    for (const name of [fusedIo.pastKey(l), fusedIo.pastValue(l)]) {
      const lanes = g.input(`lanes.${name}`, precision, laneDims);
      const row = g.input(`row.${name}`, precision, [1, dims.kvHeads, dims.capacity, dims.headDim]);
      g.output(name, g.op("Where", [mask, row, lanes]), precision, laneDims);
    }
  }
  return g;
}

const invalid = (message: string, param?: string) => new AppError("invalid_request", message, { param });

/**
 * The KV buffers, one per layer for keys and one for values, each fed as the past input and bound as the
 * present output of the same run so GroupQueryAttention writes into it (the op shares a buffer only when
 * both are the same memory). On the CPU they are host tensors. On WebGPU they are device tensors made once
 * by the merge session (whose outputs stay on the device), and the decoder session runs without preferred
 * output locations: onnxruntime-node honours a pre-allocated output only on that path, and only there do
 * past and present stay one buffer (docs/decisions/0006-fused-webgpu-decoder.md). `row` is the batch-1 set a
 * joining prompt is prefilled into before it is merged into its lane.
 */
class KvLanes {
  private readonly parts: FusedEngineParts;
  private readonly dims: number[];
  private lanes: Record<string, OrtTensor> = {};
  private row: Record<string, OrtTensor> = {};

  private constructor(parts: FusedEngineParts, dims: number[]) {
    this.parts = parts;
    this.dims = dims;
  }

  static async create(parts: FusedEngineParts): Promise<KvLanes> {
    const d = parts.model.decoder;
    const kv = new KvLanes(parts, [parts.lanes, d.numKvHeads, parts.capacity, d.headDim]);
    kv.lanes = await kv.allocate(parts.lanes);
    kv.row = await kv.allocate(1);
    return kv;
  }

  private names(): string[] {
    const out: string[] = [];
    for (let l = 0; l < this.parts.model.decoder.numLayers; l++) {
      out.push(fusedIo.pastKey(l), fusedIo.pastValue(l));
    }
    return out;
  }

  private hostZeros(width: number): OrtTensor {
    const { ort, precision } = this.parts;
    const dims = [width, ...this.dims.slice(1)];
    const size = dims.reduce((a, b) => a * b, 1);
    return precision === "float16"
      ? new ort.Tensor("float16", new Uint16Array(size), dims)
      : new ort.Tensor("float32", new Float32Array(size), dims);
  }

  /** Zeroed buffers of `width` lanes: host tensors on the CPU, device tensors from the merge session on WebGPU. */
  private async allocate(width: number): Promise<Record<string, OrtTensor>> {
    const out: Record<string, OrtTensor> = {};
    if (this.parts.device === "cpu") {
      for (const name of this.names()) out[name] = this.hostZeros(width);
      return out;
    }
    const zeros = this.hostZeros(width);
    const rowZeros = this.hostZeros(1);
    const feeds: Record<string, OrtTensor> = {
      [MERGE_MASK]: new this.parts.ort.Tensor("bool", new Uint8Array(width), [width, 1, 1, 1]),
    };
    for (const name of this.names()) {
      feeds[`lanes.${name}`] = zeros;
      feeds[`row.${name}`] = rowZeros;
    }
    const made = (await this.parts.merge.run(feeds)) as Record<string, OrtTensor>;
    for (const name of this.names()) out[name] = made[name] as OrtTensor;
    return out;
  }

  /** Past inputs and present outputs of a run over every lane (`row`: the batch-1 set) — the same tensors. */
  bind(set: "lanes" | "row"): { feeds: Record<string, OrtTensor>; fetches: Record<string, OrtTensor> } {
    const buffers = set === "lanes" ? this.lanes : this.row;
    const fetches: Record<string, OrtTensor> = {};
    for (let l = 0; l < this.parts.model.decoder.numLayers; l++) {
      fetches[fusedIo.presentKey(l)] = buffers[fusedIo.pastKey(l)] as OrtTensor;
      fetches[fusedIo.presentValue(l)] = buffers[fusedIo.pastValue(l)] as OrtTensor;
    }
    return { feeds: buffers, fetches };
  }

  /** Copies the row buffers into `lane` of every layer's buffers (on the device); the result replaces them. */
  async merge(lane: number): Promise<void> {
    const width = this.dims[0] as number;
    const laneMask = new Uint8Array(width);
    laneMask[lane] = 1;
    const feeds: Record<string, OrtTensor> = {
      [MERGE_MASK]: new this.parts.ort.Tensor("bool", laneMask, [width, 1, 1, 1]),
    };
    for (const name of this.names()) {
      feeds[`lanes.${name}`] = this.lanes[name] as OrtTensor;
      feeds[`row.${name}`] = this.row[name] as OrtTensor;
    }
    const merged = (await this.parts.merge.run(feeds)) as Record<string, OrtTensor>;
    const next: Record<string, OrtTensor> = {};
    for (const name of this.names()) next[name] = merged[name] as OrtTensor;
    if (this.parts.device !== "cpu") for (const t of Object.values(this.lanes)) t.dispose();
    this.lanes = next;
  }

  dispose(): void {
    if (this.parts.device === "cpu") return;
    for (const t of [...Object.values(this.lanes), ...Object.values(this.row)]) t.dispose();
  }
}

/** Added to the score of a position a lane must not see: far below any score, and finite in float16. */
const MASKED = -10000;

/**
 * [rows, 1, seq, total] attention bias: row k sees positions below `visible[k]`, the rest are masked. The
 * op's causal mask still applies inside a prompt.
 */
function attentionBias(
  ort: Ort,
  precision: Precision,
  visible: number[],
  seq: number,
  total: number,
): OrtTensor {
  const data = new Float32Array(visible.length * seq * total);
  visible.forEach((v, k) => {
    for (let s = 0; s < seq; s++) data.fill(MASKED, (k * seq + s) * total + v, (k * seq + s + 1) * total);
  });
  const dims = [visible.length, 1, seq, total];
  return precision === "float16"
    ? new ort.Tensor("float16", toFloat16(data), dims)
    : new ort.Tensor("float32", data, dims);
}

export class FusedEngine implements Engine {
  readonly info: ModelInfo;
  readonly device: Device;
  readonly backend: Backend;
  readonly maxSlots: number;
  readonly maxRank: number;
  private readonly parts: FusedEngineParts;
  private readonly lanes: (Lane | null)[];
  private readonly bySeq = new Map<SequenceId, number>();
  private readonly kv: KvLanes;
  private nextId = 1;
  private busy = false;

  private constructor(parts: FusedEngineParts, kv: KvLanes) {
    this.parts = parts;
    this.info = parts.info;
    this.device = parts.device;
    this.backend = parts.backend;
    this.maxSlots = parts.slots?.layout.maxSlots ?? 0;
    this.maxRank = parts.maxRank;
    this.lanes = Array.from({ length: parts.lanes }, () => null);
    this.kv = kv;
  }

  static async create(parts: FusedEngineParts): Promise<FusedEngine> {
    return new FusedEngine(parts, await KvLanes.create(parts));
  }

  setSlot(slot: number, adapter: AdapterWeights | null): void {
    if (!this.parts.slots)
      throw invalid("this engine was built with maxSlots 0: it has no adapter slots", "slot");
    if (this.busy) throw new AppError("conflict", `slot ${slot} cannot be written while a step is running`);
    this.parts.slots.set(slot, adapter);
    this.parts.loraFeeds?.changed();
  }

  createSequence(slot: number): SequenceId {
    if (!Number.isInteger(slot) || slot < 0 || slot > this.maxSlots) {
      throw invalid(`slot must be 0..${this.maxSlots}; got ${slot}`, "slot");
    }
    const lane = this.lanes.indexOf(null);
    if (lane < 0) {
      throw new AppError("conflict", `all ${this.lanes.length} lanes hold sequences; release one first`);
    }
    const id = this.nextId++;
    this.lanes[lane] = { seq: id, slot, length: 0 };
    this.bySeq.set(id, lane);
    return id;
  }

  release(seq: SequenceId): void {
    const lane = this.bySeq.get(seq);
    if (lane === undefined) return;
    this.lanes[lane] = null;
    this.bySeq.delete(seq);
  }

  async step(rows: StepRow[]): Promise<Float32Array[]> {
    if (this.busy) throw new AppError("conflict", "step called while another step is running");
    const lanes = checkStepRows(rows, this.info, (seq) => {
      const lane = this.bySeq.get(seq);
      return lane === undefined ? null : { state: lane, length: (this.lanes[lane] as Lane).length };
    });
    this.busy = true;
    try {
      const firstPrompt = this.lanes.every((l) => l === null || l.length === 0);
      if (firstPrompt || rows.every((r) => r.tokens.length === 1)) {
        return await this.run(
          rows.map((r) => r.tokens),
          lanes,
          firstPrompt,
        );
      }
      // Lanes hold caches: a fresh row's prompt runs alone (batch 1, its own buffer) and is merged into its
      // lane; a later chunk of a prompt goes one token per step (see the header); single tokens decode.
      const out: Float32Array[] = new Array(rows.length);
      const decode: number[] = [];
      const chunked: number[] = [];
      for (const [i, r] of rows.entries()) {
        const lane = this.lanes[lanes[i] as number] as Lane;
        if (r.tokens.length === 1) decode.push(i);
        else if (lane.length === 0) out[i] = await this.prefillAlone(r.tokens, lanes[i] as number);
        else chunked.push(i);
      }
      const longest = Math.max(0, ...chunked.map((i) => (rows[i] as StepRow).tokens.length));
      for (let t = 0; t < Math.max(longest, decode.length > 0 ? 1 : 0); t++) {
        const live = [
          ...(t === 0 ? decode : []),
          ...chunked.filter((i) => t < (rows[i] as StepRow).tokens.length),
        ];
        const logits = await this.run(
          live.map((i) => [(rows[i] as StepRow).tokens[t] as number]),
          live.map((i) => lanes[i] as number),
          false,
        );
        live.forEach((i, k) => {
          if (t === (rows[i] as StepRow).tokens.length - 1) out[i] = logits[k] as Float32Array;
        });
      }
      return out;
    } finally {
      this.busy = false;
    }
  }

  /**
   * One session run over every lane. `tokens[k]` goes to lane `lanes[k]`. Decode (S = 1): a lane not in the
   * step still gets a padding token, written at its length (the spare position when full) and overwritten by
   * its next real token, so its cache is unchanged. First prompt: every lane starts at 0.
   */
  private async run(tokens: number[][], lanes: number[], firstPrompt: boolean): Promise<Float32Array[]> {
    const { ort, session } = this.parts;
    const width = this.lanes.length;
    const seq = Math.max(...tokens.map((t) => t.length));
    const ids = new BigInt64Array(width * seq);
    const seqlens = new Int32Array(width);
    const kv = this.kv.bind("lanes");
    const fed = new Map<number, number[]>(lanes.map((lane, k) => [lane, tokens[k] as number[]]));
    for (let b = 0; b < width; b++) {
      const own = fed.get(b);
      if (own) for (let i = 0; i < own.length; i++) ids[b * seq + i] = BigInt(own[i] as number);
      const length = this.lanes[b]?.length ?? 0;
      seqlens[b] = firstPrompt ? Math.max(1, own?.length ?? 1) - 1 : length;
    }
    const total = Math.max(...seqlens) + 1;
    // Decode: lane b sees its cache and the token written at its length; a first prompt: its own tokens.
    const visible = Array.from({ length: width }, (_, b) =>
      firstPrompt ? Math.max(1, fed.get(b)?.length ?? 1) : (this.lanes[b]?.length ?? 0) + 1,
    );
    const logitRows = BigInt64Array.from(lanes, (lane, k) =>
      BigInt(lane * seq + (tokens[k] as number[]).length - 1),
    );
    const feeds: Record<string, OrtTensor> = {
      [fusedIo.inputIds]: new ort.Tensor("int64", ids, [width, seq]),
      [fusedIo.seqlensK]: new ort.Tensor("int32", seqlens, [width]),
      [fusedIo.totalLength]: new ort.Tensor("int32", Int32Array.of(total), []),
      [fusedIo.logitRows]: new ort.Tensor("int64", logitRows, [lanes.length]),
      [fusedIo.attentionBias]: attentionBias(ort, this.parts.precision, visible, seq, total),
      ...this.rowsShape(width, seq),
      ...kv.feeds,
      ...(await this.parts.loraFeeds?.get()),
    };
    Object.assign(feeds, this.slotMasks());
    const out = (await session.run(feeds, { [fusedIo.logits]: null, ...kv.fetches })) as Record<
      string,
      OrtTensor
    >;
    lanes.forEach((lane, k) => {
      (this.lanes[lane] as Lane).length += (tokens[k] as number[]).length;
    });
    const logits = out[fusedIo.logits]?.data as Float32Array;
    const v = this.info.vocabSize;
    return lanes.map((_, k) => logits.slice(k * v, (k + 1) * v));
  }

  /**
   * A fresh row's prompt as a first prompt of batch 1 on a zero buffer of its own, then its cache copied into
   * its lane of every layer's buffers on the device (one Where per buffer, `mergeGraph`).
   */
  private async prefillAlone(tokens: number[], lane: number): Promise<Float32Array> {
    const { ort, session } = this.parts;
    const seq = tokens.length;
    const kv = this.kv.bind("row");
    const feeds: Record<string, OrtTensor> = {
      [fusedIo.inputIds]: new ort.Tensor("int64", BigInt64Array.from(tokens, BigInt), [1, seq]),
      [fusedIo.seqlensK]: new ort.Tensor("int32", Int32Array.of(seq - 1), [1]),
      [fusedIo.totalLength]: new ort.Tensor("int32", Int32Array.of(seq), []),
      [fusedIo.logitRows]: new ort.Tensor("int64", BigInt64Array.of(BigInt(seq - 1)), [1]),
      [fusedIo.attentionBias]: attentionBias(ort, this.parts.precision, [seq], seq, seq),
      ...this.rowsShape(1, seq),
      ...kv.feeds,
      ...(await this.parts.loraFeeds?.get()),
    };
    const slot = (this.lanes[lane] as Lane).slot;
    Object.assign(feeds, this.slotMasks([slot]));
    const out = (await session.run(feeds, { [fusedIo.logits]: null, ...kv.fetches })) as Record<
      string,
      OrtTensor
    >;
    await this.kv.merge(lane);
    (this.lanes[lane] as Lane).length = seq;
    return ((out[fusedIo.logits] as OrtTensor).data as Float32Array).slice(0, this.info.vocabSize);
  }

  private rowsShape(batch: number, seq: number): Record<string, OrtTensor> {
    if (!this.parts.splitK) return {};
    return {
      [fusedIo.rowsShape]: new this.parts.ort.Tensor(
        "int64",
        BigInt64Array.of(BigInt(batch), BigInt(seq), -1n),
        [3],
      ),
    };
  }

  /**
   * Per repetition count n (`slotMaskTimes`): [rows, 1, n·S·R], 1 on the R columns of each row's slot in
   * each of the n blocks (default: every lane's slot); slot 0 all zero.
   */
  private slotMasks(rowSlots: number[] = this.lanes.map((l) => l?.slot ?? 0)): Record<string, OrtTensor> {
    if (!this.parts.slots) return {};
    const layout = this.parts.slots.layout;
    const columns = layout.maxSlots * layout.maxRank;
    const out: Record<string, OrtTensor> = {};
    for (const n of slotMaskTimes(layout)) {
      const width = n * columns;
      const mask = new Float32Array(rowSlots.length * width);
      rowSlots.forEach((slot, b) => {
        if (slot === 0) return;
        for (let k = 0; k < n; k++) {
          const start = b * width + k * columns + (slot - 1) * layout.maxRank;
          mask.fill(1, start, start + layout.maxRank);
        }
      });
      const dims = [rowSlots.length, 1, width];
      out[fusedIo.slotMaskTimes(n)] =
        this.parts.precision === "float16"
          ? new this.parts.ort.Tensor("float16", toFloat16(mask), dims)
          : new this.parts.ort.Tensor("float32", mask, dims);
    }
    return out;
  }

  async dispose(): Promise<void> {
    if (this.parts.profile) this.parts.session.endProfiling();
    this.kv.dispose();
    await this.parts.loraFeeds?.dispose();
    await this.parts.session.release();
    await this.parts.merge.release();
    this.bySeq.clear();
  }
}
