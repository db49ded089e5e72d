// Loads a Hugging Face model directory: config.json through the shared contract (src/contracts/base-model.ts),
// generation_config.json for the stop tokens, and the safetensors weights (opened, not read).
import { existsSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import {
  type BaseModelSpec,
  baseModelSpecFromConfig,
  familyLinears,
  type HfConfig,
  HfConfigSchema,
} from "../../../src/contracts/base-model.ts";
import { AppError } from "../../../src/errors.ts";
import type { DecoderMath, DecoderSpec, LinearName } from "../onnx/llama-decoder.ts";
import {
  ARCHITECTURE_FACTS,
  type ArchitectureFacts,
  type FamilyConfig,
  familyConfig,
  fullAttentionPositions,
} from "./architectures.ts";
import { type Rope, ropeFromConfig } from "./rope.ts";
import { openSafetensorsDir, type SafetensorsDir } from "./safetensors-dir.ts";

export interface HfModel {
  id: string;
  dir: string;
  config: HfConfig;
  spec: BaseModelSpec;
  facts: ArchitectureFacts;
  decoder: DecoderSpec;
  /** The rope of full-attention layers (`ropes[0]`). */
  rope: Rope;
  /** Per rope table of `decoder.math.layerRope`: gemma3's local layers read table 1. */
  ropes: Rope[];
  /** max_position_embeddings: sliding-window layers attend within their window at every position. */
  maxPositions: number;
  /**
   * The longest sequence on which full causal attention equals the model's: a graph that has no sliding
   * window (the fused graph) stops there.
   */
  fullAttentionPositions: number;
  eosTokenIds: number[];
  weights: SafetensorsDir;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new AppError("invalid_model", `${path}: cannot read JSON (${(error as Error).message})`);
  }
}

function idList(value: unknown): number[] {
  if (typeof value === "number") return [value];
  return Array.isArray(value) ? value.filter((v): v is number => typeof v === "number") : [];
}

/** generation_config.json's eos_token_id wins over config.json's, as transformers' generate() reads it. */
function eosTokenIds(dir: string, config: HfConfig): number[] {
  const path = join(dir, "generation_config.json");
  const generation = existsSync(path) ? (readJson(path) as Record<string, unknown>) : {};
  const ids = idList(generation.eos_token_id);
  return ids.length > 0 ? ids : idList(config.eos_token_id);
}

function decoderSpec(
  spec: BaseModelSpec,
  config: HfConfig,
  facts: ArchitectureFacts,
  math: DecoderMath,
): DecoderSpec {
  const biased = new Set<LinearName>(spec.modules.filter((m) => m.layer === 0 && m.bias).map((m) => m.kind));
  return {
    hiddenSize: spec.hiddenSize,
    intermediateSize: spec.intermediateSize,
    numLayers: spec.numLayers,
    numHeads: spec.numHeads,
    numKvHeads: spec.numKvHeads,
    headDim: spec.headDim,
    vocabSize: spec.vocabSize,
    rmsNormEps: config.rms_norm_eps ?? facts.defaults.rmsNormEps,
    tieWordEmbeddings: config.tie_word_embeddings ?? facts.defaults.tieWordEmbeddings,
    biased,
    linears: familyLinears(spec.architecture),
    math,
  };
}

/** Every tensor the graph reads must exist with the shape the config implies: checked before any build. */
function checkWeights(model: HfModel): void {
  const problems: string[] = [];
  const expect = (name: string, shape: number[]) => {
    if (!model.weights.has(name)) problems.push(`tensor "${name}": missing`);
    else if (model.weights.shape(name).join(",") !== shape.join(",")) {
      problems.push(`tensor "${name}": shape must be [${shape}]; got [${model.weights.shape(name)}]`);
    }
  };
  const d = model.decoder;
  expect("model.embed_tokens.weight", [d.vocabSize, d.hiddenSize]);
  expect("model.norm.weight", [d.hiddenSize]);
  if (!d.tieWordEmbeddings) expect("lm_head.weight", [d.vocabSize, d.hiddenSize]);
  for (const m of model.spec.modules) {
    expect(`${m.name}.weight`, [m.outFeatures, m.inFeatures]);
    if (m.bias) expect(`${m.name}.bias`, [m.outFeatures]);
  }
  for (let l = 0; l < d.numLayers; l++) {
    for (const norm of ["input_layernorm", ...model.facts.layerNorms]) {
      expect(`model.layers.${l}.${norm}.weight`, [d.hiddenSize]);
    }
    if (d.math.qkNorm) {
      expect(`model.layers.${l}.self_attn.q_norm.weight`, [d.headDim]);
      expect(`model.layers.${l}.self_attn.k_norm.weight`, [d.headDim]);
    }
  }
  if (problems.length > 0) {
    const first = problems.slice(0, 5).join("; ");
    throw new AppError("invalid_model", `${model.dir}: weights do not match config.json: ${first}`, {
      details: problems,
    });
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

interface RopeSettings {
  theta: number | undefined;
  scaling: Record<string, unknown> | null | undefined;
}

/**
 * transformers 5 writes `rope_parameters` ({rope_type, rope_theta, factor, ...}) where 4.x wrote `rope_theta`
 * and `rope_scaling`; both describe the same thing. Gemma 3 keys them by layer type ({full_attention: {...},
 * sliding_attention: {...}}) where 4.x wrote rope_theta + rope_scaling for global layers and
 * rope_local_base_freq (default rope) for local ones.
 */
function ropeSettings(config: HfConfig, family: FamilyConfig, table: number): RopeSettings {
  const params = (config as { rope_parameters?: unknown }).rope_parameters;
  const layerType = table === 0 ? "full_attention" : "sliding_attention";
  if (isRecord(params) && isRecord(params[layerType])) {
    const record = params[layerType] as Record<string, unknown>;
    return { theta: typeof record.rope_theta === "number" ? record.rope_theta : undefined, scaling: record };
  }
  if (table === 1) return { theta: family.rope_local_base_freq ?? 10000, scaling: null };
  if (isRecord(params)) {
    const theta = typeof params.rope_theta === "number" ? params.rope_theta : config.rope_theta;
    return { theta, scaling: params };
  }
  return { theta: config.rope_theta, scaling: config.rope_scaling };
}

export async function loadHfModel(dir: string, id = basename(resolve(dir))): Promise<HfModel> {
  const raw = readJson(join(dir, "config.json"));
  const spec = await baseModelSpecFromConfig(id, raw);
  const config = HfConfigSchema.parse(raw);
  const facts = ARCHITECTURE_FACTS[spec.architecture];
  const family = familyConfig(config, dir);
  const math = facts.math(family, {
    numLayers: spec.numLayers,
    headDim: spec.headDim,
    hiddenSize: spec.hiddenSize,
  });
  const decoder = decoderSpec(spec, config, facts, math);
  const maxPositions = config.max_position_embeddings ?? 2048;
  const context = {
    maxPositions,
    ...(family.original_max_position_embeddings
      ? { originalMaxPositions: family.original_max_position_embeddings }
      : {}),
  };
  const tables = Math.max(...math.layerRope) + 1;
  const ropes = Array.from({ length: tables }, (_, table) => {
    const settings = ropeSettings(config, family, table);
    return ropeFromConfig(
      settings.theta ?? facts.defaults.ropeTheta,
      math.rotaryDim,
      settings.scaling,
      context,
    );
  });
  const weights = openSafetensorsDir(dir);
  const model: HfModel = {
    id,
    dir,
    config,
    spec,
    facts,
    decoder,
    rope: ropes[0] as Rope,
    ropes,
    maxPositions,
    fullAttentionPositions: fullAttentionPositions(math, maxPositions),
    eosTokenIds: eosTokenIds(dir, config),
    weights,
  };
  try {
    checkWeights(model);
  } catch (error) {
    weights.close();
    throw error;
  }
  return model;
}
