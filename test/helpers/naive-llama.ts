// A second oracle for the engine: the llama-family forward written as plain loops in float64, straight from
// modeling_llama.py / modeling_qwen2.py and PEFT's LoRA forward, sharing no code with the ONNX graph
// (it reads the safetensors files and config.json itself). Slow; for tiny models only.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { AdapterWeights } from "../../gpu-runner/engine/types.ts";
import { readSafetensors, tensorBytes, toFloat32 } from "../../src/safetensors.ts";

interface Config {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  vocab_size: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling?: Record<string, number | string> | null;
  /** transformers 5's spelling of rope_theta + rope_scaling. */
  rope_parameters?: Record<string, number | string>;
  tie_word_embeddings?: boolean;
}

export interface NaiveModel {
  config: Config;
  headDim: number;
  tensor(name: string): Float32Array | undefined;
  invFreq: number[];
}

export function loadNaiveModel(dir: string): NaiveModel {
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Config;
  const file = readSafetensors(new Uint8Array(readFileSync(join(dir, "model.safetensors"))));
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  return {
    config,
    headDim,
    tensor(name) {
      const info = byName.get(name);
      return info ? toFloat32(info.dtype, tensorBytes(file, info)) : undefined;
    },
    invFreq: invFreq(config, headDim),
  };
}

function invFreq(c: Config, d: number): number[] {
  const s = c.rope_parameters ?? c.rope_scaling;
  const theta = Number(c.rope_parameters?.rope_theta ?? c.rope_theta);
  const base = Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d));
  if (s?.rope_type !== "llama3") return base;
  const [factor, low, high, old] = [
    s.factor,
    s.low_freq_factor,
    s.high_freq_factor,
    s.original_max_position_embeddings,
  ].map(Number) as [number, number, number, number];
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < old / high) return f;
    if (wavelen > old / low) return f / factor;
    const smooth = (old / wavelen - low) / (high - low);
    return ((1 - smooth) * f) / factor + smooth * f;
  });
}

function rmsNorm(x: number[], w: Float32Array, eps: number): number[] {
  const mean = x.reduce((a, v) => a + v * v, 0) / x.length;
  const inv = 1 / Math.sqrt(mean + eps);
  return x.map((v, i) => (w[i] as number) * v * inv);
}

/** y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ, with W: [out, in], A: [r, in], B: [out, r]. */
function linear(m: NaiveModel, name: string, x: number[], adapter?: AdapterWeights): number[] {
  const w = m.tensor(`${name}.weight`) as Float32Array;
  const bias = m.tensor(`${name}.bias`);
  const inF = x.length;
  const outF = w.length / inF;
  const y = Array.from({ length: outF }, (_, o) => {
    let acc = bias ? (bias[o] as number) : 0;
    for (let i = 0; i < inF; i++) acc += (w[o * inF + i] as number) * (x[i] as number);
    return acc;
  });
  const lora = adapter?.modules.find((mod) => mod.module === name);
  if (!lora) return y;
  const ax = Array.from({ length: lora.rank }, (_, j) => {
    let acc = 0;
    for (let i = 0; i < inF; i++) acc += (lora.a[j * inF + i] as number) * (x[i] as number);
    return acc;
  });
  return y.map((v, o) => {
    let acc = 0;
    for (let j = 0; j < lora.rank; j++) acc += (lora.b[o * lora.rank + j] as number) * (ax[j] as number);
    return v + lora.scale * acc;
  });
}

function rope(m: NaiveModel, vec: number[], heads: number, pos: number): number[] {
  const d = m.headDim;
  const half = d / 2;
  const out = vec.slice();
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * (m.invFreq[i] as number);
      const [x1, x2] = [vec[h * d + i] as number, vec[h * d + half + i] as number];
      out[h * d + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle);
      out[h * d + half + i] = x2 * Math.cos(angle) + x1 * Math.sin(angle);
    }
  }
  return out;
}

function attention(m: NaiveModel, q: number[][], k: number[][], v: number[][]): number[][] {
  const c = m.config;
  const d = m.headDim;
  const group = c.num_attention_heads / c.num_key_value_heads;
  return q.map((qt, t) => {
    const out: number[] = [];
    for (let h = 0; h < c.num_attention_heads; h++) {
      const kvh = Math.floor(h / group);
      const scores = Array.from({ length: t + 1 }, (_, s) => {
        let acc = 0;
        for (let i = 0; i < d; i++)
          acc += (qt[h * d + i] as number) * ((k[s] as number[])[kvh * d + i] as number);
        return acc / Math.sqrt(d);
      });
      const max = Math.max(...scores);
      const exps = scores.map((s) => Math.exp(s - max));
      const sum = exps.reduce((a, b) => a + b, 0);
      for (let i = 0; i < d; i++) {
        out.push(
          exps.reduce((acc, e, s) => acc + (e / sum) * ((v[s] as number[])[kvh * d + i] as number), 0),
        );
      }
    }
    return out;
  });
}

/** Logits at the last position of a full (uncached) forward over `tokens`. */
export function naiveLastLogits(m: NaiveModel, tokens: number[], adapter?: AdapterWeights): Float32Array {
  const c = m.config;
  const embed = m.tensor("model.embed_tokens.weight") as Float32Array;
  const h = c.hidden_size;
  let xs = tokens.map((t) => Array.from(embed.subarray(t * h, (t + 1) * h)));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    const normed = xs.map((x) =>
      rmsNorm(x, m.tensor(`${p}.input_layernorm.weight`) as Float32Array, c.rms_norm_eps),
    );
    const q = normed.map((x, t) =>
      rope(m, linear(m, `${p}.self_attn.q_proj`, x, adapter), c.num_attention_heads, t),
    );
    const k = normed.map((x, t) =>
      rope(m, linear(m, `${p}.self_attn.k_proj`, x, adapter), c.num_key_value_heads, t),
    );
    const v = normed.map((x) => linear(m, `${p}.self_attn.v_proj`, x, adapter));
    const attn = attention(m, q, k, v);
    xs = xs.map((x, t) => {
      const o = linear(m, `${p}.self_attn.o_proj`, attn[t] as number[], adapter);
      const mid = x.map((val, i) => val + (o[i] as number));
      const n = rmsNorm(
        mid,
        m.tensor(`${p}.post_attention_layernorm.weight`) as Float32Array,
        c.rms_norm_eps,
      );
      const gate = linear(m, `${p}.mlp.gate_proj`, n, adapter);
      const up = linear(m, `${p}.mlp.up_proj`, n, adapter);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * (up[i] as number));
      const down = linear(m, `${p}.mlp.down_proj`, act, adapter);
      return mid.map((val, i) => val + (down[i] as number));
    });
  }
  const last = rmsNorm(
    xs[xs.length - 1] as number[],
    m.tensor("model.norm.weight") as Float32Array,
    c.rms_norm_eps,
  );
  const head = c.tie_word_embeddings ? embed : (m.tensor("lm_head.weight") as Float32Array);
  return Float32Array.from({ length: c.vocab_size }, (_, o) =>
    last.reduce((acc, val, i) => acc + (head[o * h + i] as number) * val, 0),
  );
}

export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

/** Greedy continuation by full forwards, as the HF fixtures are made. */
export function naiveGreedy(
  m: NaiveModel,
  prompt: number[],
  steps: number,
  adapter?: AdapterWeights,
): number[] {
  const tokens = prompt.slice();
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    const next = argmax(naiveLastLogits(m, tokens, adapter));
    out.push(next);
    tokens.push(next);
  }
  return out;
}

/** max |a - b| / max |b|: the relative error the parity tests bound. */
export function relativeError(actual: Float32Array, expected: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs((actual[i] as number) - (expected[i] as number)));
    scale = Math.max(scale, Math.abs(expected[i] as number));
  }
  return diff / scale;
}
