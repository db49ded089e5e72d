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
import { fusedIo, type Precision } from "./onnx/fused-decoder.ts";
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
 * Where the KV buffers live between steps. Host memory (CPU): the same tensors are fed as past and bound as
 * present, so the op writes into them. Device memory (WebGPU): the first step uploads zeros and keeps the
 * present outputs on the GPU; later steps feed them back and bind them as the outputs too, which is what
 * lets the op share one buffer; `inPlace` turns false if the binding refuses a device tensor as an output.
 */
class KvLanes {
  readonly ort: Ort;
  private readonly device: Device;
  private readonly precision: Precision;
  private readonly dims: number[];
  private readonly layers: number;
  private past: Record<string, OrtTensor>;
  private resident = false;
  inPlace = true;

  constructor(ort: Ort, device: Device, precision: Precision, dims: number[], layers: number) {
    this.ort = ort;
    this.device = device;
    this.precision = precision;
    this.dims = dims;
    this.layers = layers;
    this.past = this.zeros();
  }

  private zeros(): Record<string, OrtTensor> {
    const size = this.dims.reduce((a, b) => a * b, 1);
    const out: Record<string, OrtTensor> = {};
    for (let l = 0; l < this.layers; l++) {
      for (const name of [fusedIo.pastKey(l), fusedIo.pastValue(l)]) {
        out[name] =
          this.precision === "float16"
            ? new this.ort.Tensor("float16", new Uint16Array(size), this.dims)
            : new this.ort.Tensor("float32", new Float32Array(size), this.dims);
      }
    }
    return out;
  }

  feeds(): Record<string, OrtTensor> {
    return this.past;
  }

  private rowZeroFeeds: Record<string, OrtTensor> | null = null;

  /** Zero past buffers of batch 1, for a row prefilled alone (fed, never bound: the op copies them). */
  rowZeros(): Record<string, OrtTensor> {
    if (!this.rowZeroFeeds) {
      const dims = [1, ...this.dims.slice(1)];
      const size = dims.reduce((a, b) => a * b, 1);
      const data = this.precision === "float16" ? new Uint16Array(size) : new Float32Array(size);
      const tensor = new this.ort.Tensor(this.precision, data, dims);
      this.rowZeroFeeds = {};
      for (let l = 0; l < this.layers; l++) {
        this.rowZeroFeeds[fusedIo.pastKey(l)] = tensor;
        this.rowZeroFeeds[fusedIo.pastValue(l)] = tensor;
      }
    }
    return this.rowZeroFeeds;
  }

  /** Copies a batch-1 run's present buffers into `lane` of every layer's buffers; the result replaces them. */
  async merge(merge: Session, row: Record<string, OrtTensor>, lane: number, width: number): Promise<void> {
    const laneMask = new Uint8Array(width);
    laneMask[lane] = 1;
    const feeds: Record<string, OrtTensor> = {
      [MERGE_MASK]: new this.ort.Tensor("bool", laneMask, [width, 1, 1, 1]),
    };
    for (let l = 0; l < this.layers; l++) {
      for (const [past, present] of [
        [fusedIo.pastKey(l), fusedIo.presentKey(l)],
        [fusedIo.pastValue(l), fusedIo.presentValue(l)],
      ] as const) {
        feeds[`lanes.${past}`] = this.past[past] as OrtTensor;
        feeds[`row.${past}`] = row[present] as OrtTensor;
      }
    }
    const merged = (await merge.run(feeds)) as Record<string, OrtTensor>;
    if (this.device !== "cpu") {
      for (let l = 0; l < this.layers; l++) {
        row[fusedIo.presentKey(l)]?.dispose();
        row[fusedIo.presentValue(l)]?.dispose();
      }
    }
    const next: Record<string, OrtTensor> = {};
    for (const name of Object.keys(this.past)) next[name] = merged[name] as OrtTensor;
    if (this.resident) for (const t of Object.values(this.past)) t.dispose();
    this.past = next;
    this.resident = this.device !== "cpu";
  }

  fetches(): Record<string, OrtTensor | null> {
    const out: Record<string, OrtTensor | null> = {};
    const bind = this.inPlace && (this.device === "cpu" || this.resident);
    for (let l = 0; l < this.layers; l++) {
      out[fusedIo.presentKey(l)] = bind ? (this.past[fusedIo.pastKey(l)] as OrtTensor) : null;
      out[fusedIo.presentValue(l)] = bind ? (this.past[fusedIo.pastValue(l)] as OrtTensor) : null;
    }
    return out;
  }

  /** True when the run wrote into the fed buffers (nothing to swap). */
  bound(): boolean {
    return this.inPlace && (this.device === "cpu" || this.resident);
  }

  update(out: Record<string, OrtTensor>): void {
    if (this.bound()) return;
    const next: Record<string, OrtTensor> = {};
    for (let l = 0; l < this.layers; l++) {
      next[fusedIo.pastKey(l)] = out[fusedIo.presentKey(l)] as OrtTensor;
      next[fusedIo.pastValue(l)] = out[fusedIo.presentValue(l)] as OrtTensor;
    }
    if (this.resident) for (const t of Object.values(this.past)) t.dispose();
    this.past = next;
    this.resident = this.device !== "cpu";
  }

  dispose(): void {
    if (this.resident) for (const t of Object.values(this.past)) t.dispose();
  }
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

  constructor(parts: FusedEngineParts) {
    this.parts = parts;
    this.info = parts.info;
    this.device = parts.device;
    this.backend = parts.backend;
    this.maxSlots = parts.slots?.layout.maxSlots ?? 0;
    this.maxRank = parts.maxRank;
    this.lanes = Array.from({ length: parts.lanes }, () => null);
    const d = parts.model.decoder;
    this.kv = new KvLanes(
      parts.ort,
      parts.device,
      parts.precision,
      [parts.lanes, d.numKvHeads, parts.capacity, d.headDim],
      d.numLayers,
    );
  }

  /** How the KV buffers are kept: "in-place" (one buffer per layer) or "copy" (a present buffer per step). */
  get kvMode(): "in-place" | "copy" {
    return this.kv.inPlace ? "in-place" : "copy";
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
    const fed = new Map<number, number[]>(lanes.map((lane, k) => [lane, tokens[k] as number[]]));
    for (let b = 0; b < width; b++) {
      const own = fed.get(b);
      if (own) for (let i = 0; i < own.length; i++) ids[b * seq + i] = BigInt(own[i] as number);
      const length = this.lanes[b]?.length ?? 0;
      seqlens[b] = firstPrompt ? Math.max(1, own?.length ?? 1) - 1 : length;
    }
    const total = Math.max(...seqlens) + 1;
    const logitRows = BigInt64Array.from(lanes, (lane, k) =>
      BigInt(lane * seq + (tokens[k] as number[]).length - 1),
    );
    const feeds: Record<string, OrtTensor> = {
      [fusedIo.inputIds]: new ort.Tensor("int64", ids, [width, seq]),
      [fusedIo.seqlensK]: new ort.Tensor("int32", seqlens, [width]),
      [fusedIo.totalLength]: new ort.Tensor("int32", Int32Array.of(total), []),
      [fusedIo.logitRows]: new ort.Tensor("int64", logitRows, [lanes.length]),
      ...this.kv.feeds(),
      ...(await this.parts.loraFeeds?.get()),
    };
    if (this.parts.slots) feeds[fusedIo.slotMask] = this.slotMask();
    const out = await this.runSession(session, feeds);
    this.kv.update(out);
    lanes.forEach((lane, k) => {
      (this.lanes[lane] as Lane).length += (tokens[k] as number[]).length;
    });
    const logits = out[fusedIo.logits]?.data as Float32Array;
    const v = this.info.vocabSize;
    return lanes.map((_, k) => logits.slice(k * v, (k + 1) * v));
  }

  private async runSession(
    session: Session,
    feeds: Record<string, OrtTensor>,
  ): Promise<Record<string, OrtTensor>> {
    const fetches = { [fusedIo.logits]: null, ...this.kv.fetches() };
    try {
      return (await session.run(feeds, fetches)) as Record<string, OrtTensor>;
    } catch (error) {
      if (!this.kv.bound() || this.device === "cpu") throw error;
      // The binding refused a device tensor as an output: keep the buffers by copy from here on.
      this.kv.inPlace = false;
      return (await session.run(feeds, { [fusedIo.logits]: null, ...this.kv.fetches() })) as Record<
        string,
        OrtTensor
      >;
    }
  }

  /**
   * A fresh row's prompt as a first prompt of batch 1 on a zero buffer of its own, then its cache copied into
   * its lane of every layer's buffers on the device (one Where per buffer, `mergeGraph`).
   */
  private async prefillAlone(tokens: number[], lane: number): Promise<Float32Array> {
    const { ort, session } = this.parts;
    const seq = tokens.length;
    const feeds: Record<string, OrtTensor> = {
      [fusedIo.inputIds]: new ort.Tensor("int64", BigInt64Array.from(tokens, BigInt), [1, seq]),
      [fusedIo.seqlensK]: new ort.Tensor("int32", Int32Array.of(seq - 1), [1]),
      [fusedIo.totalLength]: new ort.Tensor("int32", Int32Array.of(seq), []),
      [fusedIo.logitRows]: new ort.Tensor("int64", BigInt64Array.of(BigInt(seq - 1)), [1]),
      ...this.kv.rowZeros(),
      ...(await this.parts.loraFeeds?.get()),
    };
    const slot = (this.lanes[lane] as Lane).slot;
    if (this.parts.slots) feeds[fusedIo.slotMask] = this.slotMask([slot]);
    const fetches: Record<string, null> = { [fusedIo.logits]: null };
    for (let l = 0; l < this.parts.model.decoder.numLayers; l++) {
      fetches[fusedIo.presentKey(l)] = null;
      fetches[fusedIo.presentValue(l)] = null;
    }
    const out = (await session.run(feeds, fetches)) as Record<string, OrtTensor>;
    await this.kv.merge(this.parts.merge, out, lane, this.lanes.length);
    (this.lanes[lane] as Lane).length = seq;
    return ((out[fusedIo.logits] as OrtTensor).data as Float32Array).slice(0, this.info.vocabSize);
  }

  /** [rows, 1, S·R]: 1 on the R columns of each row's slot (default: every lane's); slot 0 all zero. */
  private slotMask(rowSlots: number[] = this.lanes.map((l) => l?.slot ?? 0)): OrtTensor {
    const layout = (this.parts.slots as LoraSlots).layout;
    const columns = layout.maxSlots * layout.maxRank;
    const mask = new Float32Array(rowSlots.length * columns);
    rowSlots.forEach((slot, b) => {
      if (slot > 0)
        mask.fill(1, b * columns + (slot - 1) * layout.maxRank, b * columns + slot * layout.maxRank);
    });
    const dims = [rowSlots.length, 1, columns];
    return this.parts.precision === "float16"
      ? new this.parts.ort.Tensor("float16", toFloat16(mask), dims)
      : new this.parts.ort.Tensor("float32", mask, dims);
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
