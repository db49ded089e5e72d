// How the LoRA stacks reach the session, per device. CPU: tensors wrap the stacks' arrays, so a slot write
// is seen by the next run with no copy. WebGPU: the stacks are uploaded once into GPU buffers (through a
// one-node session whose output stays on the GPU) and fed from there; a slot write marks them for upload
// before the next step, instead of sending every stack over PCIe on every step.
import { GraphBuilder } from "../onnx/graph-builder.ts";
import type { LoraSlots } from "./lora-slots.ts";
import { createSession, type Ort, type OrtTensor, type Session, type SessionRequest } from "./ort-backend.ts";
import type { Device } from "./types.ts";

export interface LoraFeeds {
  get(): Promise<Record<string, OrtTensor>>;
  /** A slot was written: the next get() must reflect it. */
  changed(): void;
  dispose(): Promise<void>;
}

function hostTensors(ort: Ort, slots: LoraSlots): Record<string, OrtTensor> {
  const out: Record<string, OrtTensor> = {};
  for (const f of slots.feeds()) out[f.name] = new ort.Tensor("float32", f.data, f.dims);
  return out;
}

function hostLoraFeeds(ort: Ort, slots: LoraSlots): LoraFeeds {
  const tensors = hostTensors(ort, slots);
  return { get: async () => tensors, changed() {}, dispose: async () => {} };
}

/** y = x + 0: a graph whose only job is to leave its input in a GPU buffer. */
function uploadGraph(): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input("x", "float32", ["a", "b", "c"]);
  g.output("y", g.op("Add", [x, g.constant("float32", [0], [])]), "float32", ["a", "b", "c"]);
  return g;
}

function residentLoraFeeds(ort: Ort, slots: LoraSlots, req: SessionRequest): LoraFeeds {
  let uploader: Session | null = null;
  let resident: Record<string, OrtTensor> | null = null;
  let stale = true;
  const release = () => {
    for (const t of Object.values(resident ?? {})) t.dispose();
    resident = null;
  };
  return {
    async get() {
      if (resident && !stale) return resident;
      uploader ??= (await createSession(uploadGraph(), { ...req, outputLocation: "gpu-buffer" })).session;
      release();
      const next: Record<string, OrtTensor> = {};
      for (const [name, host] of Object.entries(hostTensors(ort, slots))) {
        next[name] = (await uploader.run({ x: host })).y as OrtTensor;
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
      await uploader?.release();
    },
  };
}

export const LORA_FEEDS: Record<Device, (ort: Ort, slots: LoraSlots, req: SessionRequest) => LoraFeeds> = {
  cpu: (ort, slots) => hostLoraFeeds(ort, slots),
  webgpu: residentLoraFeeds,
};
