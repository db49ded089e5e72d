// The LoRA inputs of the graph, in the layout the graph's LoRA path reads (layers.ts `LinearTensors`):
// gather: per adapted linear A: [S+1, in, R], B: [S+1, R, out], slot 0 zero (no adapter);
// dense: A_cat: [in, S·R], B_cat: [S·R, out], slot s in columns/rows (s-1)·R..s·R-1, slot 0 absent.
// Ranks below R are zero-padded and each module's scale is folded into B here so the graph never multiplies
// by it. The arrays are fed to every run, so writing a slot never rebuilds a session.
import { AppError } from "../../src/errors.ts";
import {
  type DecoderSpec,
  io,
  type LoraLayout,
  type LoraPath,
  linearShape,
  moduleName,
} from "./onnx/llama-decoder.ts";
import type { Ort, OrtTensor } from "./ort-backend.ts";
import type { AdapterModuleWeights, AdapterWeights } from "./types.ts";

interface Stack {
  inFeatures: number;
  outFeatures: number;
  a: Float32Array;
  b: Float32Array;
}

/**
 * Where a layout puts slot `slot`'s A^T[i, j] (at aBase + i·aStride + j) and scale·B^T[j, o] (at
 * bBase + j·out + o): both layouts share these forms, so one writer serves both.
 */
interface StackGeometry {
  dims(inFeatures: number, outFeatures: number, layout: LoraLayout): { a: number[]; b: number[] };
  aBase(s: Stack, slot: number, rank: number): number;
  aStride(s: Stack, layout: LoraLayout): number;
  bBase(s: Stack, slot: number, rank: number): number;
  /** The per-step input that tells the graph each row's slot. */
  rowFeeds(ort: Ort, rowSlots: readonly number[], layout: LoraLayout): Record<string, OrtTensor>;
}

const GEOMETRY: Record<LoraPath, StackGeometry> = {
  gather: {
    dims: (inF, outF, l) => ({ a: [l.maxSlots + 1, inF, l.maxRank], b: [l.maxSlots + 1, l.maxRank, outF] }),
    aBase: (s, slot, r) => slot * s.inFeatures * r,
    aStride: (_s, l) => l.maxRank,
    bBase: (s, slot, r) => slot * r * s.outFeatures,
    rowFeeds: (ort, rowSlots) => ({
      [io.slotIds]: new ort.Tensor("int64", BigInt64Array.from(rowSlots, BigInt), [rowSlots.length]),
    }),
  },
  dense: {
    dims: (inF, outF, l) => ({ a: [inF, l.maxSlots * l.maxRank], b: [l.maxSlots * l.maxRank, outF] }),
    aBase: (_s, slot, r) => (slot - 1) * r,
    aStride: (_s, l) => l.maxSlots * l.maxRank,
    bBase: (s, slot, r) => (slot - 1) * r * s.outFeatures,
    rowFeeds: (ort, rowSlots, l) => ({ [io.slotMask]: slotMask(ort, rowSlots, l) }),
  },
};

/** [B, 1, S·R]: 1 on the R columns of each row's slot, all zero for slot 0. */
function slotMask(ort: Ort, rowSlots: readonly number[], l: LoraLayout): OrtTensor {
  const columns = l.maxSlots * l.maxRank;
  const mask = new Float32Array(rowSlots.length * columns);
  for (const [row, slot] of rowSlots.entries()) {
    if (slot > 0) mask.fill(1, row * columns + (slot - 1) * l.maxRank, row * columns + slot * l.maxRank);
  }
  return new ort.Tensor("float32", mask, [rowSlots.length, 1, columns]);
}

/**
 * Where one slot lies in a stack: the stack read as [outer, slots, inner] (row-major) holds slot s at index
 * s - first of the middle axis, so a slot's values are `outer` runs of `inner` contiguous values.
 */
export interface SlotView {
  outer: number;
  slots: number;
  inner: number;
  first: number;
}

/**
 * The view of a stack of this layout by its graph input name and dims: gather stacks are [S+1, in, R] and
 * [S+1, R, out]; dense A stacks [in, n·S·R] and B stacks [n·S·R, out] (n = 1, or the fused graph's group of
 * n linears, onnx/fused-decoder.ts `groupLoraStacks`), each linear's S·R columns (rows for B) slot-major.
 */
export function slotViewOf(name: string, dims: readonly number[], layout: LoraLayout): SlotView {
  const [d0, d1, d2] = dims as [number, number, number | undefined];
  if (dims.length === 3) return { outer: 1, slots: d0, inner: d1 * (d2 as number), first: 0 };
  const block = layout.maxSlots * layout.maxRank;
  if (name.startsWith("lora_a.")) {
    return { outer: d0 * (d1 / block), slots: layout.maxSlots, inner: layout.maxRank, first: 1 };
  }
  return { outer: d0 / block, slots: layout.maxSlots, inner: layout.maxRank * d1, first: 1 };
}

export class LoraSlots {
  readonly layout: LoraLayout;
  private readonly stacks = new Map<string, Stack>();
  /** Slots written since the last takeWritten(), for feeds that send only what changed (lora-feeds.ts). */
  private readonly written = new Set<number>();
  private readonly inputNames = new Map<string, { a: string; b: string }>();
  private readonly geometry: StackGeometry;

  constructor(spec: DecoderSpec, layout: LoraLayout) {
    this.layout = layout;
    this.geometry = GEOMETRY[layout.path ?? "gather"];
    for (let layer = 0; layer < spec.numLayers; layer++) {
      for (const m of layout.modules) {
        const { inFeatures, outFeatures } = linearShape(spec, m);
        const name = moduleName(layer, m);
        const dims = this.geometry.dims(inFeatures, outFeatures, layout);
        this.stacks.set(name, {
          inFeatures,
          outFeatures,
          a: new Float32Array(dims.a.reduce((x, y) => x * y, 1)),
          b: new Float32Array(dims.b.reduce((x, y) => x * y, 1)),
        });
        this.inputNames.set(name, { a: io.loraA(layer, m), b: io.loraB(layer, m) });
      }
    }
  }

  /** Graph input name → backing array, for building the feed. */
  feeds(): { name: string; dims: number[]; data: Float32Array }[] {
    const out: { name: string; dims: number[]; data: Float32Array }[] = [];
    for (const [module, s] of this.stacks) {
      const names = this.inputNames.get(module) as { a: string; b: string };
      const dims = this.geometry.dims(s.inFeatures, s.outFeatures, this.layout);
      out.push({ name: names.a, dims: dims.a, data: s.a });
      out.push({ name: names.b, dims: dims.b, data: s.b });
    }
    return out;
  }

  /**
   * One slot's values of every stack, under the stacks' names, as a layout of one slot lays them out (dense:
   * A [in, R], B [R, out]; gather: [1, in, R], [1, R, out]): what a feed sends when only this slot changed.
   */
  slotFeeds(slot: number): { name: string; dims: number[]; data: Float32Array }[] {
    const r = this.layout.maxRank;
    const gather = (this.layout.path ?? "gather") === "gather";
    const out: { name: string; dims: number[]; data: Float32Array }[] = [];
    for (const [module, s] of this.stacks) {
      const names = this.inputNames.get(module) as { a: string; b: string };
      const [aBase, aStride] = [this.geometry.aBase(s, slot, r), this.geometry.aStride(s, this.layout)];
      const a = new Float32Array(s.inFeatures * r);
      for (let i = 0; i < s.inFeatures; i++) {
        a.set(s.a.subarray(aBase + i * aStride, aBase + i * aStride + r), i * r);
      }
      const bBase = this.geometry.bBase(s, slot, r);
      const b = s.b.slice(bBase, bBase + r * s.outFeatures);
      out.push({ name: names.a, dims: gather ? [1, s.inFeatures, r] : [s.inFeatures, r], data: a });
      out.push({ name: names.b, dims: gather ? [1, r, s.outFeatures] : [r, s.outFeatures], data: b });
    }
    return out;
  }

  /** The step's slot selector (slot ids or slot mask, per layout) for rows in these slots. */
  rowFeeds(ort: Ort, rowSlots: readonly number[]): Record<string, OrtTensor> {
    return this.geometry.rowFeeds(ort, rowSlots, this.layout);
  }

  /** Every problem with an adapter against this layout, each naming the module, the rule and the value. */
  problems(adapter: AdapterWeights): string[] {
    const problems: string[] = [];
    for (const m of adapter.modules) {
      const s = this.stacks.get(m.module);
      if (!s) {
        const kinds = this.layout.modules.join(", ");
        problems.push(`${m.module}: not an adaptable linear of this engine (LoRA slots exist for ${kinds})`);
        continue;
      }
      if (!Number.isInteger(m.rank) || m.rank < 1 || m.rank > this.layout.maxRank) {
        problems.push(`${m.module}: rank must be 1..${this.layout.maxRank} (max rank); got ${m.rank}`);
        continue;
      }
      if (m.a.length !== m.rank * s.inFeatures) {
        problems.push(
          `${m.module}: A must be [${m.rank}, ${s.inFeatures}] (${m.rank * s.inFeatures} values); got ${m.a.length}`,
        );
      }
      if (m.b.length !== s.outFeatures * m.rank) {
        problems.push(
          `${m.module}: B must be [${s.outFeatures}, ${m.rank}] (${s.outFeatures * m.rank} values); got ${m.b.length}`,
        );
      }
      if (!Number.isFinite(m.scale)) problems.push(`${m.module}: scale must be finite; got ${m.scale}`);
    }
    return problems;
  }

  /** Validates first, so a refused adapter leaves the slot as it was. */
  set(slot: number, adapter: AdapterWeights | null): void {
    if (!Number.isInteger(slot) || slot < 1 || slot > this.layout.maxSlots) {
      throw new AppError("invalid_request", `slot must be 1..${this.layout.maxSlots}; got ${slot}`, {
        param: "slot",
      });
    }
    const problems = adapter ? this.problems(adapter) : [];
    if (problems.length > 0) {
      throw new AppError("invalid_adapter", `adapter does not fit the engine: ${problems[0]}`, {
        details: problems,
      });
    }
    // one pass per stack: a written module's tail past its rank is zeroed as it is written, so nothing is
    // written twice (a refill from the host tier is this copy and nothing else)
    const byModule = new Map((adapter?.modules ?? []).map((m) => [m.module, m]));
    for (const [name, s] of this.stacks) this.write(s, slot, byModule.get(name) ?? null);
    this.written.add(slot);
  }

  /** The slots written since the last call, in no order; the record starts empty again. */
  takeWritten(): number[] {
    const out = [...this.written];
    this.written.clear();
    return out;
  }

  /** Slot `slot` of stack `s` := module `m` (A^T and scale·B^T, zero past its rank), or zeros for null. */
  private write(s: Stack, slot: number, m: AdapterModuleWeights | null): void {
    const r = this.layout.maxRank;
    const rank = m?.rank ?? 0;
    const [aBase, aStride] = [this.geometry.aBase(s, slot, r), this.geometry.aStride(s, this.layout)];
    const bBase = this.geometry.bBase(s, slot, r);
    const { inFeatures, outFeatures } = s;
    // A^T, i outer: each input row's R values are contiguous in both layouts. a is [rank, in] row-major.
    for (let i = 0; i < inFeatures; i++) {
      const row = aBase + i * aStride;
      for (let j = 0; j < rank; j++)
        s.a[row + j] = (m as AdapterModuleWeights).a[j * inFeatures + i] as number;
      for (let j = rank; j < r; j++) s.a[row + j] = 0;
    }
    // scale·B^T, o inner so the writes are contiguous: b is [out, rank] row-major.
    for (let j = 0; j < rank; j++) {
      const { b, scale } = m as AdapterModuleWeights;
      const row = bBase + j * outFeatures;
      for (let o = 0; o < outFeatures; o++) s.b[row + o] = scale * (b[o * rank + j] as number);
    }
    s.b.fill(0, bBase + rank * outFeatures, bBase + r * outFeatures);
  }
}
