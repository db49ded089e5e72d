// What differs between the model families we serve, as records of facts and functions.
// Shared code asks the record; adding a family adds an entry here and touches nothing else.
import type { Architecture, HfConfig } from "../../../src/contracts/base-model.ts";
import type { GraphBuilder } from "../onnx/graph-builder.ts";
import {
  buildLlamaDecoder,
  type DecoderOptions,
  type DecoderSpec,
  type WeightSource,
} from "../onnx/llama-decoder.ts";

export interface ArchitectureFacts {
  /** transformers' config class defaults for fields a config.json may omit. */
  defaults: { rmsNormEps: number; ropeTheta: number; tieWordEmbeddings: boolean };
  /**
   * The longest context on which full causal attention equals the family's attention: mistral's sliding
   * window makes positions past it attend differently, so the engine stops there.
   */
  maxPositions(config: HfConfig): number;
  buildGraph(spec: DecoderSpec, weights: WeightSource, options: DecoderOptions): GraphBuilder;
}

const declaredMax = (c: HfConfig) => c.max_position_embeddings ?? 2048;

function windowed(c: HfConfig): number {
  const window = (c as { sliding_window?: unknown }).sliding_window;
  return typeof window === "number" && window > 0 ? Math.min(declaredMax(c), window) : declaredMax(c);
}

function qwenWindowed(c: HfConfig): number {
  return (c as { use_sliding_window?: unknown }).use_sliding_window === true ? windowed(c) : declaredMax(c);
}

export const ARCHITECTURE_FACTS: Record<Architecture, ArchitectureFacts> = {
  llama: {
    defaults: { rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false },
    maxPositions: declaredMax,
    buildGraph: buildLlamaDecoder,
  },
  mistral: {
    defaults: { rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false },
    maxPositions: windowed,
    buildGraph: buildLlamaDecoder,
  },
  qwen2: {
    defaults: { rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false },
    maxPositions: qwenWindowed,
    buildGraph: buildLlamaDecoder,
  },
};
