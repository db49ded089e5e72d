// Builds the Engine (types.ts) on onnxruntime: loads the HF model, builds its decoder graph (LoRA stacks as
// inputs, so writing a slot never rebuilds the session), and picks how stacks and KV caches reach the device
// (lora-feeds.ts, kv-feeds.ts). The per-step work lives in ort-engine.ts.
import { AppError } from "../../src/errors.ts";
import { FusedEngine, mergeGraph } from "./fused-engine.ts";
import { KV_FEEDERS, outputLocations } from "./kv-feeds.ts";
import { LORA_FEEDS } from "./lora-feeds.ts";
import { LoraSlots } from "./lora-slots.ts";
import { type HfModel, loadHfModel } from "./model/hf-model.ts";
import { buildFusedDecoder, fusedDecoderSupports, fusedIo, type Precision } from "./onnx/fused-decoder.ts";
import { LINEAR_NAMES, type LinearName, type LoraPath, type WeightSource } from "./onnx/llama-decoder.ts";
import { createSession, loadOrt, type SessionRequest } from "./ort-backend.ts";
import { OrtEngine } from "./ort-engine.ts";
import type { Backend, Device, Engine, ModelInfo } from "./types.ts";

export interface EngineOptions {
  modelDir: string;
  device?: Device;
  backend?: Backend;
  /** Adapter slots besides slot 0; 0 builds a graph without LoRA inputs. */
  maxSlots: number;
  maxRank: number;
  threads?: number;
  /**
   * How rows reach their adapter in the graph: "dense" (two GEMMs over all slots' concatenated stacks, a
   * mask per row) or "gather" (copies each row's stacks). Default: `defaultLoraPath(device, maxSlots, maxRank)`.
   */
  loraPath?: LoraPath;
  /** Fused ops where ORT has them (RMSNorm as one node): default on WebGPU, where dispatches dominate. */
  fusedOps?: boolean;
  /** Linears that get LoRA slots (default: all seven). Fewer modules make a cheaper graph. */
  loraModules?: readonly LinearName[];
  /** Model id as served; defaults to the directory's name. */
  id?: string;
  /**
   * Feed LoRA stacks and past K/V from host memory on every step even on a GPU (what the CPU path does):
   * slower, for diagnosis and comparison.
   */
  hostFeeds?: boolean;
  /** Path prefix for ORT's per-op profile (JSON), written when the engine is disposed. */
  profile?: string;
  /**
   * "fused": onnxruntime's contrib ops with fixed lanes and in-place KV buffers (onnx/fused-decoder.ts),
   * opt-in (see `defaultGraph`); "primitive": standard ops (onnx/llama-decoder.ts), the default, and what
   * training differentiates. docs/decisions/0006-fused-webgpu-decoder.md.
   */
  graph?: GraphKind;
  /** Fused graph only: float16 (default on WebGPU, bf16 checkpoints converted on load) or float32. */
  precision?: Precision;
  /** Fused graph only: "int4" stores the base linears 4-bit (MatMulNBits, block 32); adapters stay exact. */
  quantize?: "int4";
  /** Fused graph only: sequences held at once (the batch width of every step); default 32. */
  lanes?: number;
  /** Fused graph only: the longest sequence a lane holds; default min(model max positions, 4096). */
  contextLength?: number;
}

export type GraphKind = "fused" | "primitive";

export const DEFAULT_LANES = 32;
const DEFAULT_CONTEXT = 4096;

/**
 * The primitive graph everywhere for now: on the H200 the fused graph's WebGPU decode steps diverged from HF
 * after the first token and its KV buffers were not shared in place (docs/decisions/0006-fused-webgpu-decoder.md,
 * "Status"), so it is opt-in (`graph: "fused"`) until that is fixed. It is exact on CPU.
 */
export function defaultGraph(_device: Device): GraphKind {
  return "primitive";
}

export interface ModelEngineOptions extends Omit<EngineOptions, "modelDir" | "id"> {
  /** Replaces the model's weights (e.g. an adapter merged in for the merge-and-swap baseline). */
  weights?: WeightSource;
}

/**
 * The dense path trades the gather path's per-row stack copies for slots·rank extra GEMM columns. Measured
 * (BENCHMARKS.md, runner section, "LoRA paths"): on WebGPU, where copies and dispatches cost more than FLOPs,
 * dense beat gather at 32 slots of rank 16 (512 columns); on CPU the extra FLOPs cost more than the copies
 * even at 8 slots (128 columns), so CPU keeps gather. Wider than the measured 512 columns stays on gather.
 */
export const DENSE_MAX_COLUMNS = 512;

export function defaultLoraPath(device: Device, maxSlots: number, maxRank: number): LoraPath {
  return device === "webgpu" && maxSlots * maxRank <= DENSE_MAX_COLUMNS ? "dense" : "gather";
}

function checkOptions(o: ModelEngineOptions): void {
  const bad = (field: string, rule: string, value: unknown) =>
    new AppError("invalid_request", `${field} must be ${rule}; got ${JSON.stringify(value)}`, {
      param: field,
    });
  if (!Number.isInteger(o.maxSlots) || o.maxSlots < 0) throw bad("maxSlots", "an integer >= 0", o.maxSlots);
  if (!Number.isInteger(o.maxRank) || o.maxRank < 1) throw bad("maxRank", "an integer >= 1", o.maxRank);
  if (o.threads !== undefined && (!Number.isInteger(o.threads) || o.threads < 1)) {
    throw bad("threads", "an integer >= 1", o.threads);
  }
  if (o.loraPath !== undefined && o.loraPath !== "dense" && o.loraPath !== "gather") {
    throw bad("loraPath", `"dense" or "gather"`, o.loraPath);
  }
  if (o.graph !== undefined && o.graph !== "fused" && o.graph !== "primitive") {
    throw bad("graph", `"fused" or "primitive"`, o.graph);
  }
  if (o.precision !== undefined && o.precision !== "float32" && o.precision !== "float16") {
    throw bad("precision", `"float32" or "float16"`, o.precision);
  }
  if (o.lanes !== undefined && (!Number.isInteger(o.lanes) || o.lanes < 1))
    throw bad("lanes", "an integer >= 1", o.lanes);
  if (o.contextLength !== undefined && (!Number.isInteger(o.contextLength) || o.contextLength < 1)) {
    throw bad("contextLength", "an integer >= 1", o.contextLength);
  }
  if (o.graph === "primitive" && o.precision === "float16") {
    throw bad("precision", `"float32" with graph "primitive" (float16 needs the fused graph)`, o.precision);
  }
  if (o.quantize !== undefined && o.quantize !== "int4") throw bad("quantize", `"int4"`, o.quantize);
  if (o.quantize && o.graph === "primitive") {
    throw bad("quantize", `absent with graph "primitive" (int4 needs the fused graph)`, o.quantize);
  }
  if (o.graph === "fused" && o.loraPath === "gather") {
    throw bad("loraPath", `"dense" with graph "fused"`, o.loraPath);
  }
}

export async function createEngine(options: EngineOptions): Promise<Engine> {
  const model = await loadHfModel(options.modelDir, options.id);
  try {
    return await createEngineFromModel(model, options);
  } finally {
    model.weights.close();
  }
}

/** Builds the graph from an opened model; the caller keeps ownership of `model.weights`. */
export async function createEngineFromModel(model: HfModel, options: ModelEngineOptions): Promise<Engine> {
  checkOptions(options);
  const device = options.device ?? "cpu";
  const backend = options.backend ?? "native";
  const threads = options.threads ?? 1;
  const graphKind = options.graph ?? defaultGraph(device);
  if (graphKind === "fused") {
    const unsupported = fusedDecoderSupports(model.decoder);
    if (unsupported === null) return createFusedEngine(model, options, device, backend, threads);
    if (options.graph === "fused") throw new AppError("invalid_model", `graph "fused": ${unsupported}`);
  }
  const layout =
    options.maxSlots > 0
      ? {
          maxSlots: options.maxSlots,
          maxRank: options.maxRank,
          modules: options.loraModules ?? LINEAR_NAMES,
          path: options.loraPath ?? defaultLoraPath(device, options.maxSlots, options.maxRank),
        }
      : null;
  const request: SessionRequest = { device, backend, threads, profile: options.profile };
  const ort = await loadOrt(backend, threads);
  const feeds = options.hostFeeds ? "cpu" : device;
  const kvFeeder = KV_FEEDERS[feeds](ort, model.decoder);
  const graph = model.facts.buildGraph(model.decoder, options.weights ?? model.weights, {
    lora: layout,
    presentOutputs: kvFeeder.presentOutputs,
    fusedOps: options.fusedOps ?? device === "webgpu",
  });
  const outputLocation = outputLocations(kvFeeder, model.decoder.numLayers);
  const { session } = await createSession(graph, { ...request, outputLocation });
  const info: ModelInfo = {
    id: model.id,
    architecture: model.spec.architecture,
    vocabSize: model.spec.vocabSize,
    hiddenSize: model.spec.hiddenSize,
    numLayers: model.spec.numLayers,
    maxPositions: model.maxPositions,
    eosTokenIds: model.eosTokenIds,
  };
  const slots = layout ? new LoraSlots(model.decoder, layout) : null;
  const loraFeeds = slots ? LORA_FEEDS[feeds](ort, slots, request) : null;
  const profile = !!options.profile;
  return new OrtEngine({
    ort,
    session,
    model,
    info,
    device,
    backend,
    slots,
    loraFeeds,
    kvFeeder,
    maxRank: options.maxRank,
    profile,
  });
}

async function createFusedEngine(
  model: HfModel,
  options: ModelEngineOptions,
  device: Device,
  backend: Backend,
  threads: number,
): Promise<Engine> {
  const precision: Precision = options.precision ?? (device === "webgpu" ? "float16" : "float32");
  const lanes = options.lanes ?? DEFAULT_LANES;
  const context = Math.min(model.maxPositions, options.contextLength ?? DEFAULT_CONTEXT);
  const layout =
    options.maxSlots > 0
      ? {
          maxSlots: options.maxSlots,
          maxRank: options.maxRank,
          modules: options.loraModules ?? LINEAR_NAMES,
          path: "dense" as const,
        }
      : null;
  const request: SessionRequest = { device, backend, threads, profile: options.profile };
  const ort = await loadOrt(backend, threads);
  // One spare position per lane: a lane left out of a decode step takes a padding token there.
  const capacity = context + 1;
  const graph = buildFusedDecoder(model.decoder, options.weights ?? model.weights, {
    precision,
    lora: layout,
    capacity,
    rope: model.rope,
    quantize: options.quantize ?? null,
  });
  const outputLocation = device === "webgpu" ? presentLocations(model.decoder.numLayers) : undefined;
  const { session } = await createSession(graph, { ...request, outputLocation });
  const d = model.decoder;
  const merge = (
    await createSession(
      mergeGraph(d.numLayers, precision, { kvHeads: d.numKvHeads, capacity, headDim: d.headDim }),
      { ...request, profile: undefined, outputLocation: device === "webgpu" ? "gpu-buffer" : undefined },
    )
  ).session;
  const info: ModelInfo = {
    id: model.id,
    architecture: model.spec.architecture,
    vocabSize: model.spec.vocabSize,
    hiddenSize: model.spec.hiddenSize,
    numLayers: model.spec.numLayers,
    maxPositions: context,
    eosTokenIds: model.eosTokenIds,
  };
  const feeds = options.hostFeeds ? "cpu" : device;
  const slots = layout ? new LoraSlots(model.decoder, layout) : null;
  const loraFeeds = slots ? LORA_FEEDS[feeds](ort, slots, request, precision) : null;
  return new FusedEngine({
    ort,
    session,
    merge,
    model,
    info,
    device,
    backend,
    precision,
    slots,
    loraFeeds,
    lanes,
    capacity,
    maxRank: options.maxRank,
    profile: !!options.profile,
  });
}

function presentLocations(numLayers: number): Record<string, "gpu-buffer"> {
  const out: Record<string, "gpu-buffer"> = {};
  for (let l = 0; l < numLayers; l++) {
    out[fusedIo.presentKey(l)] = "gpu-buffer";
    out[fusedIo.presentValue(l)] = "gpu-buffer";
  }
  return out;
}
