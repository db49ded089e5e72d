// The engine contract between the model side (graph, sessions, KV cache) and the serving side
// (scheduler, sampler, adapter cache, HTTP). The serving side only ever talks to an `Engine`.

import type { AdapterWeights } from "../../src/adapters/weights.ts";

// The adapter weights the engine takes are the core's (decoded and validated in src/adapters/weights.ts).
export type { AdapterModuleWeights, AdapterWeights } from "../../src/adapters/weights.ts";

export type Device = "cpu" | "webgpu";
export type Backend = "native" | "wasm";

export interface ModelInfo {
  /** Model id as served (`GET /v1/models`), usually the directory's base name. */
  id: string;
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  /** Longest sequence (prompt + generated) the engine accepts. */
  maxPositions: number;
  /** Token ids that end generation (from generation_config.json / config.json). */
  eosTokenIds: number[];
}

export type SequenceId = number;

export interface StepRow {
  seq: SequenceId;
  /** Tokens to append: the prompt (or a chunk of it) when prefilling, one token when decoding. */
  tokens: number[];
}

export interface Engine {
  readonly info: ModelInfo;
  readonly device: Device;
  readonly backend: Backend;
  /** Adapter slots 1..maxSlots; slot 0 is the base model (no adapter). */
  readonly maxSlots: number;
  /** Widest rank a slot holds; smaller ranks are zero-padded. */
  readonly maxRank: number;
  /** Writes an adapter's weights into a slot (null clears it). Must not be called for a slot in use by a step. */
  setSlot(slot: number, adapter: AdapterWeights | null): void;
  /** Starts an empty sequence whose rows use the adapter in `slot`. */
  createSequence(slot: number): SequenceId;
  /**
   * One forward pass over a batch. Rows may belong to different slots and be at different positions. Each
   * row's tokens are appended to its sequence's KV cache; the result holds, per row and in order, the logits
   * at that row's last position (`vocabSize` floats).
   */
  step(rows: StepRow[]): Promise<Float32Array[]>;
  /** Frees a sequence's KV cache. */
  release(seq: SequenceId): void;
  dispose(): Promise<void>;
}
