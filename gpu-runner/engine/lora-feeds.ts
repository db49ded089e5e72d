// How the LoRA stacks reach the session, per device. CPU: tensors wrap the stacks' arrays, so a slot write
// is seen by the next run with no copy. WebGPU: the stacks are uploaded once into GPU buffers (through a
// one-node session whose output stays on the GPU) and fed from there. A slot write sends only that slot's
// values: a small session takes the resident stack and the slot's values and writes the new stack on the
// device, so a refill moves one adapter over PCIe, not every slot of every stack (~400 MB at the H200 shape).

import { toFloat16 } from "./float16.ts";
import { GraphBuilder } from "./onnx/graph-builder.ts";
import { createSession, type Ort, type OrtTensor, type Session, type SessionRequest } from "./ort-backend.ts";
import type { Precision } from "./onnx/fused-decoder.ts";
import type { LoraLayout } from "./onnx/llama-decoder.ts";
import { type SlotView, slotViewOf } from "./lora-slots.ts";
import type { Device } from "./types.ts";

/**
 * Where the stacks come from: the slots themselves, or a regrouping of them (the fused graph's,
 * `groupLoraStacks`); `copies` says the arrays are rebuilt by each `feeds()`, so a slot write is seen only by
 * reading them again.
 */
export interface StackSource {
  feeds(): { name: string; dims: number[]; data: Float32Array }[];
  copies?: boolean;
  /** With takeWritten: where each slot lies in the stacks (lora-slots.ts `slotViewOf`). */
  layout?: LoraLayout;
  /** The slots written since the last call (lora-slots.ts); absent: every write re-sends every stack. */
  takeWritten?(): number[];
  /** One slot's values of every stack, laid out as [outer, 1, inner] of its view (lora-slots.ts). */
  slotFeeds?(slot: number): { name: string; dims: number[]; data: Float32Array }[];
}

export interface LoraFeeds {
  get(): Promise<Record<string, OrtTensor>>;
  /** A slot was written: the next get() must reflect it. */
  changed(): void;
  /** Bytes sent to the device so far (0 where the stacks are fed from host memory). */
  sentBytes(): number;
  dispose(): Promise<void>;
}

/** float32 tensors wrap the stacks' arrays (a slot write is seen without a copy); float16 ones are copies. */
function hostTensors(ort: Ort, slots: StackSource, precision: Precision): Record<string, OrtTensor> {
  const out: Record<string, OrtTensor> = {};
  for (const f of slots.feeds()) {
    out[f.name] =
      precision === "float16"
        ? new ort.Tensor("float16", toFloat16(f.data), f.dims)
        : new ort.Tensor("float32", f.data, f.dims);
  }
  return out;
}

function hostLoraFeeds(ort: Ort, slots: StackSource, precision: Precision): LoraFeeds {
  let tensors = hostTensors(ort, slots, precision);
  let stale = false;
  return {
    async get() {
      if (stale) tensors = hostTensors(ort, slots, precision);
      stale = false;
      return tensors;
    },
    changed() {
      // float32 tensors share the stacks' memory; copies must be redone.
      stale = precision === "float16" || slots.copies === true;
    },
    sentBytes: () => 0,
    dispose: async () => {},
  };
}

/** y = x + 0: a graph whose only job is to leave its input (of `rank` dims) in a GPU buffer. */
function uploadGraph(rank: number, precision: Precision): GraphBuilder {
  const g = new GraphBuilder();
  const dims = Array.from({ length: rank }, (_, i) => `d${i}`);
  const x = g.input("x", precision, dims);
  g.output("y", g.op("Add", [x, g.constant(precision, [0], [])]), precision, dims);
  return g;
}

/**
 * y = x with one slot replaced: x (resident, `rank` dims) read as [outer, slots, inner] (`view`), the slot's
 * values `patch` [outer, 1, inner] where `mask` [1, slots, 1] is true. Only the patch and the mask cross to
 * the device; the copy of x happens there.
 */
function patchGraph(rank: number, precision: Precision): GraphBuilder {
  const g = new GraphBuilder();
  const dims = Array.from({ length: rank }, (_, i) => `d${i}`);
  const x = g.input("x", precision, dims);
  const patch = g.input("patch", precision, ["outer", 1, "inner"]);
  const mask = g.input("mask", "bool", [1, "slots", 1]);
  const view = g.input("view", "int64", [3]);
  const replaced = g.op("Where", [mask, patch, g.op("Reshape", [x, view])]);
  g.output("y", g.op("Reshape", [replaced, g.op("Shape", [x])]), precision, dims);
  return g;
}

function residentLoraFeeds(
  ort: Ort,
  slots: StackSource,
  req: SessionRequest,
  precision: Precision,
): LoraFeeds {
  // on the CPU (tests, --host-feeds off) the same sessions run with their outputs in host memory
  const outputLocation = req.device === "webgpu" ? ("gpu-buffer" as const) : undefined;
  // One session per kind and input rank: the gather layout's stacks are 3-D, the dense layout's 2-D.
  const sessions = new Map<string, Session>();
  const session = async (kind: "upload" | "patch", rank: number) => {
    const key = `${kind}${rank}`;
    let s = sessions.get(key);
    if (!s) {
      const graph = kind === "upload" ? uploadGraph(rank, precision) : patchGraph(rank, precision);
      s = (await createSession(graph, { ...req, profile: undefined, outputLocation })).session;
      sessions.set(key, s);
    }
    return s;
  };
  let sent = 0;
  const host = (data: Float32Array, dims: number[]): OrtTensor => {
    sent += data.length * (precision === "float16" ? 2 : 4);
    return precision === "float16"
      ? new ort.Tensor("float16", toFloat16(data), dims)
      : new ort.Tensor("float32", data, dims);
  };
  const upload = async (f: { dims: number[]; data: Float32Array }) =>
    (await (await session("upload", f.dims.length)).run({ x: host(f.data, f.dims) })).y as OrtTensor;
  const patch = async (resident: OrtTensor, values: Float32Array, view: SlotView, slot: number) => {
    const mask = new Uint8Array(view.slots);
    mask[slot - view.first] = 1;
    const run = await (await session("patch", resident.dims.length)).run({
      x: resident,
      patch: host(values, [view.outer, 1, view.inner]),
      mask: new ort.Tensor("bool", mask, [1, view.slots, 1]),
      view: new ort.Tensor("int64", BigInt64Array.from([view.outer, view.slots, view.inner], BigInt), [3]),
    });
    return run.y as OrtTensor;
  };
  let resident: Record<string, OrtTensor> | null = null;
  let stale = true;
  const release = () => {
    for (const t of Object.values(resident ?? {})) t.dispose();
    resident = null;
  };
  return {
    async get() {
      if (resident && !stale) return resident;
      const written = slots.takeWritten?.() ?? null;
      const { layout, slotFeeds } = slots;
      if (resident !== null && written !== null && layout !== undefined && slotFeeds !== undefined) {
        const current: Record<string, OrtTensor> = resident;
        for (const slot of written) {
          for (const f of slotFeeds.call(slots, slot)) {
            const old = current[f.name] as OrtTensor;
            const next = await patch(old, f.data, slotViewOf(f.name, old.dims, layout), slot);
            old.dispose();
            current[f.name] = next;
          }
        }
        stale = false;
        return current;
      }
      release();
      const next: Record<string, OrtTensor> = {};
      for (const f of slots.feeds()) next[f.name] = await upload(f);
      resident = next;
      stale = false;
      return resident;
    },
    changed() {
      stale = true;
    },
    sentBytes: () => sent,
    async dispose() {
      release();
      for (const s of sessions.values()) await s.release();
    },
  };
}

/** The device's feeds, or resident ones whatever the device (the WebGPU logic, testable on the CPU). */
export function createResidentLoraFeeds(
  ort: Ort,
  slots: StackSource,
  req: SessionRequest,
  precision: Precision = "float32",
): LoraFeeds {
  return residentLoraFeeds(ort, slots, req, precision);
}

export const LORA_FEEDS: Record<
  Device,
  (ort: Ort, slots: StackSource, req: SessionRequest, precision?: Precision) => LoraFeeds
> = {
  cpu: (ort, slots, _req, precision = "float32") => hostLoraFeeds(ort, slots, precision),
  webgpu: (ort, slots, req, precision = "float32") => residentLoraFeeds(ort, slots, req, precision),
};
