// Builds the Engine (types.ts) on onnxruntime: loads the HF model, builds its decoder graph (LoRA stacks as
// inputs, so writing a slot never rebuilds the session), and picks how stacks and KV caches reach the device
// (lora-feeds.ts, kv-feeds.ts). The per-step work lives in ort-engine.ts.
import { AppError } from "../../src/errors.ts";
import { FusedEngine, mergeGraph } from "./fused-engine.ts";
import { KV_FEEDERS, outputLocations } from "./kv-feeds.ts";
import { LORA_FEEDS } from "./lora-feeds.ts";
import { LoraSlots } from "./lora-slots.ts";
import { type HfModel, loadHfModel } from "./model/hf-model.ts";
import {
  buildFusedDecoder,
  fusedDecoderSupports,
  groupLoraStacks,
  type Precision,
} from "./onnx/fused-decoder.ts";
import type { LinearName, LoraPath, WeightSource } from "./onnx/llama-decoder.ts";
import {
  createSession,
  loadOrt,
  type SessionRequest,
  WEBGPU_VALIDATION,
  type WebGpuSettings,
} from "./ort-backend.ts";
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
  /** Linears that get LoRA slots (default: every linear of the family). Fewer modules make a cheaper graph. */
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
   * the WebGPU default (see `defaultGraph`); "primitive": standard ops (onnx/llama-decoder.ts), the CPU
   * default, and what training differentiates. docs/decisions/0006-fused-webgpu-decoder.md.
   */
  graph?: GraphKind;
  /** Fused graph only: float16 (default on WebGPU, bf16 checkpoints converted on load) or float32. */
  precision?: Precision;
  /** Fused graph only: "int4" stores the base linears 4-bit (MatMulNBits, block 32); adapters stay exact. */
  quantize?: "int4";
  /**
   * Fused graph only: the decode step's narrow products split over K (onnx/fused-decoder.ts, `splitK`).
   * Default on WebGPU, where its MatMul leaves most of the GPU idle at 32 rows; off on the CPU. A number
   * is the smallest slice of K (default 128), so small test models split too.
   */
  splitK?: boolean | number;
  /** WebGPU provider settings (Dawn validation level); ignored on the CPU. */
  webgpu?: WebGpuSettings;
  /** Fused graph only: sequences held at once (the batch width of every step); default 32. */
  lanes?: number;
  /**
   * The longest sequence (prompt + completion), at most the model's max positions (the runner's
   * --max-model-len). Default: the fused graph min(model max positions, 4096), the primitive graph the model's.
   */
  contextLength?: number;
}

export type GraphKind = "fused" | "primitive";

export const DEFAULT_LANES = 32;
const DEFAULT_CONTEXT = 4096;

/**
 * The fused graph on WebGPU, where each kernel costs host time and it runs ~3x faster than the primitive
 * graph; the primitive graph on CPU, where onnxruntime-node copies the fused graph's fixed-capacity cache back
 * after every run (docs/decisions/0006-fused-webgpu-decoder.md).
 */
export function defaultGraph(device: Device): GraphKind {
  return device === "webgpu" ? "fused" : "primitive";
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
  if (typeof o.splitK === "number" && (!Number.isInteger(o.splitK) || o.splitK < 1)) {
    throw bad("splitK", "a boolean or an integer >= 1 (the smallest slice of K)", o.splitK);
  }
  if (o.splitK !== undefined && o.graph === "primitive") {
    throw bad("splitK", `absent with graph "primitive" (split-K products are the fused graph's)`, o.splitK);
  }
  const wv = o.webgpu?.validation;
  if (wv !== undefined && !WEBGPU_VALIDATION.includes(wv)) {
    throw bad("webgpu.validation", `one of ${WEBGPU_VALIDATION.join(", ")}`, wv);
  }
  if (o.quantize && o.graph === "primitive") {
    throw bad("quantize", `absent with graph "primitive" (int4 needs the fused graph)`, o.quantize);
  }
  if (o.graph === "fused" && o.loraPath === "gather") {
    throw bad("loraPath", `"dense" with graph "fused"`, o.loraPath);
  }
}

/** LoRA slots only for linears the family has (phi3: qkv_proj, o_proj, gate_up_proj, down_proj). */
function checkLoraModules(model: HfModel, modules: readonly LinearName[] | undefined): void {
  const bad = modules?.find((m) => !model.decoder.linears.includes(m));
  if (bad === undefined) return;
  throw new AppError(
    "invalid_request",
    `loraModules must name linears of model_type "${model.spec.architecture}" (${model.decoder.linears.join(", ")}); got ${JSON.stringify(bad)}`,
    { param: "loraModules" },
  );
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
  // as vLLM's max_model_len: positions beyond the model's own limit were never trained
  if (options.contextLength !== undefined && options.contextLength > model.maxPositions) {
    throw new AppError(
      "invalid_request",
      `contextLength must be <= the model's max positions (${model.maxPositions}); got ${options.contextLength}`,
      { param: "contextLength" },
    );
  }
  const device = options.device ?? "cpu";
  const backend = options.backend ?? "native";
  const threads = options.threads ?? 1;
  checkLoraModules(model, options.loraModules);
  const fusable = model.facts.fusedGraph;
  if (options.graph === "fused" && !fusable) {
    throw new AppError(
      "invalid_request",
      `graph must be "primitive" for model_type "${model.spec.architecture}" (the fused graph computes llama, mistral and qwen2 only); got "fused"`,
      { param: "graph" },
    );
  }
  const graphKind = fusable ? (options.graph ?? defaultGraph(device)) : "primitive";
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
          modules: options.loraModules ?? model.decoder.linears,
          path: options.loraPath ?? defaultLoraPath(device, options.maxSlots, options.maxRank),
        }
      : null;
  const request: SessionRequest = {
    device,
    backend,
    threads,
    profile: options.profile,
    webgpu: options.webgpu,
  };
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
    maxPositions: options.contextLength ?? model.maxPositions,
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
  // The fused graph has no sliding-window mask: it stops where full attention still equals the model's.
  const context = Math.min(model.fullAttentionPositions, options.contextLength ?? DEFAULT_CONTEXT);
  const layout =
    options.maxSlots > 0
      ? {
          maxSlots: options.maxSlots,
          maxRank: options.maxRank,
          modules: options.loraModules ?? model.decoder.linears,
          path: "dense" as const,
        }
      : null;
  const request: SessionRequest = {
    device,
    backend,
    threads,
    profile: options.profile,
    webgpu: options.webgpu,
  };
  const ort = await loadOrt(backend, threads);
  const splitK = options.splitK ?? device === "webgpu";
  const split = splitK !== false;
  // One spare position per lane: a lane left out of a decode step takes a padding token there.
  const capacity = context + 1;
  const graph = buildFusedDecoder(model.decoder, options.weights ?? model.weights, {
    precision,
    lora: layout,
    capacity,
    rope: model.rope,
    quantize: options.quantize ?? null,
    splitK,
  });
  // No preferred output locations: the KV buffers are bound as outputs, which onnxruntime-node honours only
  // on that path; the merge session's outputs stay on the device (fused-engine.ts, KvLanes).
  const { session } = await createSession(graph, request);
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
  const stacks = slots && {
    feeds: () => groupLoraStacks(d, slots.layout, slots.feeds()),
    copies: true,
    // the grouped stacks keep each slot in one place (lora-slots.ts `slotViewOf`), so writes can be patched
    layout: slots.layout,
    takeWritten: () => slots.takeWritten(),
    slotFeeds: (slot: number) => groupLoraStacks(d, { ...slots.layout, maxSlots: 1 }, slots.slotFeeds(slot)),
  };
  const loraFeeds = stacks ? LORA_FEEDS[feeds](ort, stacks, request, precision) : null;
  return FusedEngine.create({
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
    splitK: split,
  });
}
