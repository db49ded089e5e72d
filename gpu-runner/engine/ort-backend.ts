// The two onnxruntime packages behind one API (both re-export onnxruntime-common): native binaries through
// onnxruntime-node, WebAssembly through onnxruntime-web. Only this file knows which one runs.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as OrtNode from "onnxruntime-node";
import { AppError } from "../../src/errors.ts";
import type { GraphBuilder } from "./onnx/graph-builder.ts";
import type { Backend, Device } from "./types.ts";

export type Ort = typeof OrtNode;
export type Session = OrtNode.InferenceSession;
export type OrtTensor = OrtNode.Tensor;

/** Protobuf's 2 GB message cap, with margin for the graph itself. */
const EMBED_LIMIT_BYTES = 1.5 * 2 ** 30;

let wasmThreadsSet: number | null = null;

export async function loadOrt(backend: Backend, threads: number): Promise<Ort> {
  if (backend === "native") return import("onnxruntime-node");
  const ort = (await import("onnxruntime-web")) as unknown as Ort;
  // onnxruntime-web reads its thread count once, when its first session starts its WASM instance.
  if (wasmThreadsSet === null) {
    ort.env.wasm.numThreads = threads;
    wasmThreadsSet = threads;
  }
  return ort;
}

export interface SessionRequest {
  device: Device;
  backend: Backend;
  threads: number;
  profile?: string;
  /** Where outputs stay: "gpu-buffer" keeps them on the device for the next run (all, or by output name). */
  outputLocation?: "gpu-buffer" | Record<string, "gpu-buffer">;
  /** WebGPU provider settings (ignored off WebGPU); defaults are onnxruntime's. */
  webgpu?: WebGpuSettings;
}

/** Dawn/WebGPU validation levels, as onnxruntime's WebGPU provider names them. */
export const WEBGPU_VALIDATION = ["disabled", "wgpuOnly", "basic", "full"] as const;
export type WebGpuValidation = (typeof WEBGPU_VALIDATION)[number];

export interface WebGpuSettings {
  /**
   * "disabled" skips Dawn's per-dispatch validation (host time per kernel); "basic" is onnxruntime's
   * release default. docs/decisions/0006-fused-webgpu-decoder.md has the measurement.
   */
  validation?: WebGpuValidation;
}

function webgpuProvider(settings: WebGpuSettings | undefined) {
  return settings?.validation ? { name: "webgpu", validationMode: settings.validation } : "webgpu";
}

function sessionOptions(req: SessionRequest): OrtNode.InferenceSession.SessionOptions {
  const webgpu = req.device === "webgpu";
  const provider = webgpu ? webgpuProvider(req.webgpu) : req.backend === "wasm" ? "wasm" : "cpu";
  return {
    executionProviders: [provider] as OrtNode.InferenceSession.SessionOptions["executionProviders"],
    intraOpNumThreads: req.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    ...(req.profile ? { enableProfiling: true, profileFilePrefix: req.profile } : {}),
    ...(req.outputLocation ? { preferredOutputLocation: req.outputLocation } : {}),
  };
}

function initializerBytes(graph: GraphBuilder): number {
  return graph.initializers.reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1) * 4, 0);
}

/** Builds a session; weights go to an external data file beside a temporary model file past the 2 GB cap. */
export async function createSession(
  graph: GraphBuilder,
  req: SessionRequest,
): Promise<{ ort: Ort; session: Session }> {
  if (req.device === "webgpu" && req.backend === "wasm") {
    throw new AppError("invalid_request", 'device "webgpu" needs backend "native"; got backend "wasm"');
  }
  const ort = await loadOrt(req.backend, req.threads);
  const options = sessionOptions(req);
  if (initializerBytes(graph) < EMBED_LIMIT_BYTES) {
    return { ort, session: await ort.InferenceSession.create(graph.toBytes(), options) };
  }
  const dir = mkdtempSync(join(tmpdir(), "lora-edge-model-"));
  try {
    const modelPath = join(dir, "model.onnx");
    writeFileSync(modelPath, graph.toBytesWithExternalData(join(dir, "model.onnx.data"), "model.onnx.data"));
    return { ort, session: await ort.InferenceSession.create(modelPath, options) };
  } finally {
    // ORT has read (or mapped and copied) the weights once the session exists.
    rmSync(dir, { recursive: true, force: true });
  }
}
