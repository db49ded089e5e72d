// How the LoRA stacks reach the session, per device. CPU: tensors wrap the stacks' arrays, so a slot write
// is seen by the next run with no copy. WebGPU: the stacks are uploaded once into GPU buffers (through a
// one-node session whose output stays on the GPU) and fed from there; a slot write marks them for upload
// before the next step, instead of sending every stack over PCIe on every step.

import { toFloat16 } from "./float16.ts";
import { GraphBuilder } from "./onnx/graph-builder.ts";
import { createSession, type Ort, type OrtTensor, type Session, type SessionRequest } from "./ort-backend.ts";
import type { Precision } from "./onnx/fused-decoder.ts";
import type { Device } from "./types.ts";

/**
 * Where the stacks come from: the slots themselves, or a regrouping of them (the fused graph's,
 * `groupLoraStacks`); `copies` says the arrays are rebuilt by each `feeds()`, so a slot write is seen only by
 * reading them again.
 */
export interface StackSource {
  feeds(): { name: string; dims: number[]; data: Float32Array }[];
  copies?: boolean;
}

export interface LoraFeeds {
  get(): Promise<Record<string, OrtTensor>>;
  /** A slot was written: the next get() must reflect it. */
  changed(): void;
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

function residentLoraFeeds(
  ort: Ort,
  slots: StackSource,
  req: SessionRequest,
  precision: Precision,
): LoraFeeds {
  // One uploader per rank: the gather layout's stacks are 3-D, the dense layout's 2-D.
  const uploaders = new Map<number, Session>();
  const upload = async (host: OrtTensor) => {
    const rank = host.dims.length;
    let uploader = uploaders.get(rank);
    if (!uploader) {
      uploader = (await createSession(uploadGraph(rank, precision), { ...req, outputLocation: "gpu-buffer" }))
        .session;
      uploaders.set(rank, uploader);
    }
    return (await uploader.run({ x: host })).y as OrtTensor;
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
      release();
      const next: Record<string, OrtTensor> = {};
      for (const [name, host] of Object.entries(hostTensors(ort, slots, precision))) {
        next[name] = await upload(host);
      }
      resident = next;
      stale = false;
      return resident;
    },
    changed() {
      stale = true;
    },
    async dispose() {
      release();
      for (const u of uploaders.values()) await u.release();
    },
  };
}

export const LORA_FEEDS: Record<
  Device,
  (ort: Ort, slots: StackSource, req: SessionRequest, precision?: Precision) => LoraFeeds
> = {
  cpu: (ort, slots, _req, precision = "float32") => hostLoraFeeds(ort, slots, precision),
  webgpu: (ort, slots, req, precision = "float32") => residentLoraFeeds(ort, slots, req, precision),
};
