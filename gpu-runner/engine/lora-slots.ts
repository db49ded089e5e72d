// The stacked LoRA inputs of the graph. Per adapted linear, A: [S+1, in, R] and B: [S+1, R, out]; slot 0
// stays zero (no adapter), ranks below R are zero-padded, and each module's scale is folded into B here so
// the graph never multiplies by it. The arrays are fed to every run, so writing a slot never rebuilds a session.
import { AppError } from "../../src/errors.ts";
import { type DecoderSpec, io, type LoraLayout, linearShape, moduleName } from "../onnx/llama-decoder.ts";
import type { AdapterWeights } from "./types.ts";

interface Stack {
  inFeatures: number;
  outFeatures: number;
  /** A: [S+1, in, R] */
  a: Float32Array;
  /** B: [S+1, R, out] */
  b: Float32Array;
}

export class LoraSlots {
  readonly layout: LoraLayout;
  private readonly stacks = new Map<string, Stack>();
  private readonly inputNames = new Map<string, { a: string; b: string }>();

  constructor(spec: DecoderSpec, layout: LoraLayout) {
    this.layout = layout;
    const slots = layout.maxSlots + 1;
    for (let layer = 0; layer < spec.numLayers; layer++) {
      for (const m of layout.modules) {
        const { inFeatures, outFeatures } = linearShape(spec, m);
        const name = moduleName(layer, m);
        this.stacks.set(name, {
          inFeatures,
          outFeatures,
          a: new Float32Array(slots * inFeatures * layout.maxRank),
          b: new Float32Array(slots * layout.maxRank * outFeatures),
        });
        this.inputNames.set(name, { a: io.loraA(layer, m), b: io.loraB(layer, m) });
      }
    }
  }

  /** Graph input name → backing array, for building the feed. */
  feeds(): { name: string; dims: number[]; data: Float32Array }[] {
    const out: { name: string; dims: number[]; data: Float32Array }[] = [];
    const slots = this.layout.maxSlots + 1;
    const r = this.layout.maxRank;
    for (const [module, s] of this.stacks) {
      const names = this.inputNames.get(module) as { a: string; b: string };
      out.push({ name: names.a, dims: [slots, s.inFeatures, r], data: s.a });
      out.push({ name: names.b, dims: [slots, r, s.outFeatures], data: s.b });
    }
    return out;
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
    const r = this.layout.maxRank;
    for (const s of this.stacks.values()) {
      s.a.fill(0, slot * s.inFeatures * r, (slot + 1) * s.inFeatures * r);
      s.b.fill(0, slot * r * s.outFeatures, (slot + 1) * r * s.outFeatures);
    }
    for (const m of adapter?.modules ?? []) {
      const s = this.stacks.get(m.module) as Stack;
      const aBase = slot * s.inFeatures * r;
      const bBase = slot * r * s.outFeatures;
      for (let j = 0; j < m.rank; j++) {
        // A^T into [in, R]: a is [r, in] row-major.
        for (let i = 0; i < s.inFeatures; i++) s.a[aBase + i * r + j] = m.a[j * s.inFeatures + i] as number;
        // scale·B^T into [R, out]: b is [out, r] row-major.
        for (let o = 0; o < s.outFeatures; o++)
          s.b[bBase + j * s.outFeatures + o] = m.scale * (m.b[o * m.rank + j] as number);
      }
    }
  }
}
