// The Engine on one onnxruntime session: validates step rows, assembles each step's feeds (tokens, rotary
// tables, mask, LoRA stacks, past K/V) and keeps every sequence's cache up to date.
import { AppError } from "../../src/errors.ts";
import { appendStep, emptyRow, gatherBlock, type KvRow, reusableBlock } from "./kv-cache.ts";
import type { KvFeeder } from "./kv-feeds.ts";
import type { LoraFeeds } from "./lora-feeds.ts";
import type { LoraSlots } from "./lora-slots.ts";
import type { HfModel } from "./model/hf-model.ts";
import { io, stepInputsOf } from "./onnx/llama-decoder.ts";
import type { Ort, OrtTensor, Session } from "./ort-backend.ts";
import { buildStepInputs, type RowPlan, type StepGeometry } from "./step-inputs.ts";
import { checkStepRows } from "./step-rows.ts";
import type { AdapterWeights, Backend, Device, Engine, ModelInfo, SequenceId, StepRow } from "./types.ts";

export interface EngineParts {
  ort: Ort;
  session: Session;
  model: HfModel;
  info: ModelInfo;
  device: Device;
  backend: Backend;
  slots: LoraSlots | null;
  loraFeeds: LoraFeeds | null;
  kvFeeder: KvFeeder;
  maxRank: number;
  profile: boolean;
}

interface Sequence {
  slot: number;
  kv: KvRow;
}

const invalid = (message: string, param?: string) => new AppError("invalid_request", message, { param });

export class OrtEngine implements Engine {
  readonly info: ModelInfo;
  readonly device: Device;
  readonly backend: Backend;
  readonly maxSlots: number;
  readonly maxRank: number;
  private readonly parts: EngineParts;
  private readonly sequences = new Map<SequenceId, Sequence>();
  private readonly geometry: StepGeometry;
  private nextId = 1;
  private busy = false;

  constructor(parts: EngineParts) {
    this.parts = parts;
    const d = parts.model.decoder;
    const used = stepInputsOf(d);
    this.geometry = {
      ropes: parts.model.ropes,
      tables: used.ropes,
      rotaryDim: d.math.rotaryDim,
      masks: used.masks,
      window: d.math.slidingWindow,
    };
    this.info = parts.info;
    this.device = parts.device;
    this.backend = parts.backend;
    this.maxSlots = parts.slots?.layout.maxSlots ?? 0;
    this.maxRank = parts.maxRank;
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
    const id = this.nextId++;
    this.sequences.set(id, { slot, kv: emptyRow() });
    return id;
  }

  release(seq: SequenceId): void {
    this.sequences.delete(seq);
  }

  async step(rows: StepRow[]): Promise<Float32Array[]> {
    if (this.busy) throw new AppError("conflict", "step called while another step is running");
    const seqs = checkStepRows(rows, this.info, (seq) => {
      const s = this.sequences.get(seq);
      return s ? { state: s, length: s.kv.length } : null;
    });
    this.busy = true;
    try {
      return await this.run(rows, seqs);
    } finally {
      this.busy = false;
    }
  }

  private async run(rows: StepRow[], seqs: Sequence[]): Promise<Float32Array[]> {
    const { ort, session, model, kvFeeder } = this.parts;
    const d = model.decoder;
    const seq = Math.max(...rows.map((r) => r.tokens.length));
    const kvRows = seqs.map((s) => s.kv);
    const block = reusableBlock(kvRows, seq) ?? gatherBlock(kvRows, d, seq);
    const past = kvFeeder.past(block);
    const plans: RowPlan[] = rows.map((r, b) => ({
      tokens: r.tokens,
      pastValid: (kvRows[b] as KvRow).valid,
      position: (kvRows[b] as KvRow).length,
    }));
    const step = buildStepInputs(plans, past.length, this.geometry);
    const batch = rows.length;
    const rotary = [batch, seq, this.geometry.rotaryDim];
    const feeds: Record<string, OrtTensor> = {
      [io.inputIds]: new ort.Tensor("int64", step.ids, [batch, seq]),
      ...past.feeds,
      ...(await this.parts.loraFeeds?.get()),
      ...this.parts.slots?.rowFeeds(
        ort,
        seqs.map((s) => s.slot),
      ),
    };
    for (const [t, cos] of step.cos) feeds[io.cosOf(t)] = new ort.Tensor("float32", cos, rotary);
    for (const [t, sin] of step.sin) feeds[io.sinOf(t)] = new ort.Tensor("float32", sin, rotary);
    for (const [kind, mask] of step.masks) {
      feeds[io.biasOf(kind)] = new ort.Tensor("float32", mask, [batch, seq, past.length + seq]);
    }
    const out = await session.run(feeds);
    const layers = Array.from({ length: d.numLayers }, (_, l) => l);
    const newKeys = layers.map((l) => out[io.newKey(l)]?.data as Float32Array);
    const newValues = layers.map((l) => out[io.newValue(l)]?.data as Float32Array);
    appendStep(block, d, newKeys, newValues, seq);
    kvFeeder.update(block, out);
    for (const [b, r] of kvRows.entries()) {
      const valid = new Uint8Array(block.used);
      valid.set(r.valid);
      valid.set(step.newValid[b] as Uint8Array, block.used - seq);
      r.valid = valid;
      r.length += (rows[b] as StepRow).tokens.length;
    }
    const logits = out[io.logits]?.data as Float32Array;
    const v = this.info.vocabSize;
    return rows.map((_, b) => logits.slice(b * v, (b + 1) * v));
  }

  async dispose(): Promise<void> {
    if (this.parts.profile) this.parts.session.endProfiling();
    this.parts.kvFeeder.dispose();
    await this.parts.loraFeeds?.dispose();
    await this.parts.session.release();
    this.sequences.clear();
  }
}
