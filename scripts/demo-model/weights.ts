// The demo model's config and seeded random weights, named as transformers' LlamaForCausalLM saves them.
import { createRng } from "../../src/random.ts";
import { fromFloat32, type TensorToWrite } from "../../src/safetensors.ts";

export interface DemoDims {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  vocabSize: number;
  maxPositions: number;
}

export const DEFAULT_DIMS: DemoDims = {
  hiddenSize: 256,
  intermediateSize: 688,
  numLayers: 4,
  numHeads: 4,
  numKvHeads: 2,
  vocabSize: 520,
  maxPositions: 2048,
};

export function llamaConfig(dims: DemoDims, bosId: number, eosIds: number[]): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: dims.hiddenSize,
    intermediate_size: dims.intermediateSize,
    num_hidden_layers: dims.numLayers,
    num_attention_heads: dims.numHeads,
    num_key_value_heads: dims.numKvHeads,
    head_dim: dims.hiddenSize / dims.numHeads,
    hidden_act: "silu",
    max_position_embeddings: dims.maxPositions,
    initializer_range: 0.02,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    tie_word_embeddings: false,
    vocab_size: dims.vocabSize,
    bos_token_id: bosId,
    eos_token_id: eosIds,
    torch_dtype: "float32",
    use_cache: true,
  };
}

/** Tensor name → shape, [out, in] for linears as PyTorch stores them. */
export function llamaShapes(dims: DemoDims): Map<string, number[]> {
  const { hiddenSize: h, intermediateSize: i, numHeads, numKvHeads, vocabSize: v } = dims;
  const headDim = h / numHeads;
  const shapes = new Map<string, number[]>([
    ["model.embed_tokens.weight", [v, h]],
    ["model.norm.weight", [h]],
    ["lm_head.weight", [v, h]],
  ]);
  for (let l = 0; l < dims.numLayers; l++) {
    const p = `model.layers.${l}`;
    shapes.set(`${p}.input_layernorm.weight`, [h]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [h]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [numHeads * headDim, h]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [numKvHeads * headDim, h]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [numKvHeads * headDim, h]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [h, numHeads * headDim]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [i, h]);
    shapes.set(`${p}.mlp.up_proj.weight`, [i, h]);
    shapes.set(`${p}.mlp.down_proj.weight`, [h, i]);
  }
  return shapes;
}

/**
 * Norms start at 1 (as transformers initialises them), everything else is N(0, 0.02²), drawn from one
 * stream in name order so that the same seed gives the same bytes.
 */
export function llamaWeights(dims: DemoDims, seed: number): Record<string, TensorToWrite> {
  const rng = createRng(seed);
  const shapes = llamaShapes(dims);
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of [...shapes.keys()].sort()) {
    const shape = shapes.get(name) as number[];
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith("norm.weight")) values.fill(1);
    else for (let k = 0; k < values.length; k++) values[k] = rng.nextNormal() * 0.02;
    tensors[name] = { dtype: "F32", shape, data: fromFloat32("F32", values) };
  }
  return tensors;
}
