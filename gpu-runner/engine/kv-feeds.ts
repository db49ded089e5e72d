// How a step's past K/V reaches the session, per device (a record, not a branch in the engine).
// CPU: the block's [B, KVH, C, D] buffers are fed as they are (ORT reads host memory; unused positions are
// masked). WebGPU: the previous step's present K/V stay on the GPU and are fed straight back; only when the
// block changed (rows joined, left, or the block was regathered) are its used positions uploaded again.

import type { KvBlock, KvDims } from "./kv-cache.ts";
import { io } from "./onnx/llama-decoder.ts";
import type { Ort, OrtTensor } from "./ort-backend.ts";
import type { Device } from "./types.ts";

export interface PastFeed {
  feeds: Record<string, OrtTensor>;
  /** Past positions P the graph sees (the mask covers P + T). */
  length: number;
}

export interface KvFeeder {
  /** The graph outputs present K/V (only the resident strategy needs them). */
  readonly presentOutputs: boolean;
  past(block: KvBlock): PastFeed;
  /** Takes the run's outputs after the block advanced by the step. */
  update(block: KvBlock, out: Record<string, OrtTensor>): void;
  dispose(): void;
}

function hostFeeder(ort: Ort, dims: KvDims): KvFeeder {
  return {
    presentOutputs: false,
    past(block) {
      const shape = [block.batch, dims.numKvHeads, block.capacity, dims.headDim];
      const feeds: Record<string, OrtTensor> = {};
      for (let l = 0; l < dims.numLayers; l++) {
        feeds[io.pastKey(l)] = new ort.Tensor("float32", block.keys[l] as Float32Array, shape);
        feeds[io.pastValue(l)] = new ort.Tensor("float32", block.values[l] as Float32Array, shape);
      }
      return { feeds, length: block.capacity };
    },
    update() {},
    dispose() {},
  };
}

/** The block's used positions [0, used) as a dense [B, KVH, used, D] copy. */
function usedPositions(buffer: Float32Array, block: KvBlock, dims: KvDims): Float32Array {
  const rows = block.batch * dims.numKvHeads;
  const span = block.used * dims.headDim;
  const out = new Float32Array(rows * span);
  for (let r = 0; r < rows; r++) {
    const src = r * block.capacity * dims.headDim;
    out.set(buffer.subarray(src, src + span), r * span);
  }
  return out;
}

function residentFeeder(ort: Ort, dims: KvDims): KvFeeder {
  let resident: { block: KvBlock; used: number; feeds: Record<string, OrtTensor> } | null = null;
  const release = () => {
    for (const t of Object.values(resident?.feeds ?? {})) t.dispose();
    resident = null;
  };
  return {
    presentOutputs: true,
    past(block) {
      if (resident && resident.block === block && resident.used === block.used) {
        return { feeds: resident.feeds, length: block.used };
      }
      release();
      const shape = [block.batch, dims.numKvHeads, block.used, dims.headDim];
      const feeds: Record<string, OrtTensor> = {};
      for (let l = 0; l < dims.numLayers; l++) {
        feeds[io.pastKey(l)] = new ort.Tensor(
          "float32",
          usedPositions(block.keys[l] as Float32Array, block, dims),
          shape,
        );
        feeds[io.pastValue(l)] = new ort.Tensor(
          "float32",
          usedPositions(block.values[l] as Float32Array, block, dims),
          shape,
        );
      }
      return { feeds, length: block.used };
    },
    update(block, out) {
      release();
      const feeds: Record<string, OrtTensor> = {};
      for (let l = 0; l < dims.numLayers; l++) {
        feeds[io.pastKey(l)] = out[io.presentKey(l)] as OrtTensor;
        feeds[io.pastValue(l)] = out[io.presentValue(l)] as OrtTensor;
      }
      resident = { block, used: block.used, feeds };
    },
    dispose: release,
  };
}

export const KV_FEEDERS: Record<Device, (ort: Ort, dims: KvDims) => KvFeeder> = {
  cpu: hostFeeder,
  webgpu: residentFeeder,
};

/** Output locations for a session: present K/V stay where the feeder keeps them. */
export function outputLocations(
  feeder: KvFeeder,
  numLayers: number,
): Record<string, "gpu-buffer"> | undefined {
  if (!feeder.presentOutputs) return undefined;
  const out: Record<string, "gpu-buffer"> = {};
  for (let l = 0; l < numLayers; l++) {
    out[io.presentKey(l)] = "gpu-buffer";
    out[io.presentValue(l)] = "gpu-buffer";
  }
  return out;
}
