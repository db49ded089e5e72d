// The runner benchmark's workloads: a batch of prompts prefilled in one step, then greedy decoding, timed
// end to end (prefill included) as generated tokens per second. Merge-and-swap serves the same requests the
// way a server without multi-LoRA must: merge one adapter into the weights, build, serve its rows, switch.
import { createEngineFromModel } from "../../gpu-runner/engine/engine.ts";
import type { HfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import type { WeightSource } from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import type { AdapterWeights, Backend, Device, Engine } from "../../gpu-runner/engine/types.ts";

export interface Workload {
  batch: number;
  promptTokens: number;
  newTokens: number;
}

export interface RunTiming {
  seconds: number;
  prefillMs: number;
  decodeStepMs: number;
  tokens: number;
}

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

function promptFor(row: number, w: Workload, vocab: number): number[] {
  return Array.from({ length: w.promptTokens }, (_, j) => 3 + ((row * 7919 + j * 104729) % (vocab - 3)));
}

/** Generates `newTokens` per row for rows in the given slots; one prefill step, then one step per token. */
export async function generate(
  engine: Engine,
  slots: number[],
  w: Workload,
  firstRow = 0,
): Promise<RunTiming> {
  const seqs = slots.map((s) => engine.createSequence(s));
  const start = performance.now();
  let logits = await engine.step(
    seqs.map((seq, i) => ({ seq, tokens: promptFor(firstRow + i, w, engine.info.vocabSize) })),
  );
  const prefilled = performance.now();
  for (let t = 1; t < w.newTokens; t++) {
    logits = await engine.step(seqs.map((seq, i) => ({ seq, tokens: [argmax(logits[i] as Float32Array)] })));
  }
  const end = performance.now();
  for (const seq of seqs) engine.release(seq);
  return {
    seconds: (end - start) / 1000,
    prefillMs: prefilled - start,
    decodeStepMs: (end - prefilled) / Math.max(1, w.newTokens - 1),
    tokens: slots.length * w.newTokens,
  };
}

/** W' = W + s·B·A for every adapted module (PEFT's merge), other tensors untouched. */
export function mergedWeights(base: WeightSource, adapter: AdapterWeights): WeightSource {
  const byWeight = new Map(adapter.modules.map((m) => [`${m.module}.weight`, m]));
  return {
    get(name) {
      const w = base.get(name);
      const m = byWeight.get(name);
      if (!m) return w;
      const inF = m.a.length / m.rank;
      const outF = m.b.length / m.rank;
      for (let o = 0; o < outF; o++) {
        for (let j = 0; j < m.rank; j++) {
          const sb = m.scale * (m.b[o * m.rank + j] as number);
          for (let i = 0; i < inF; i++)
            w[o * inF + i] = (w[o * inF + i] as number) + sb * (m.a[j * inF + i] as number);
        }
      }
      return w;
    },
  };
}

export interface SwapOptions {
  device: Device;
  backend: Backend;
  threads: number;
  hostFeeds?: boolean;
}

/** Every row a different adapter, served one adapter at a time by merging it and rebuilding the session. */
export async function mergeAndSwap(
  model: HfModel,
  adapters: AdapterWeights[],
  w: Workload,
  o: SwapOptions,
): Promise<RunTiming & { swapMs: number }> {
  const start = performance.now();
  let tokens = 0;
  let swapMs = 0;
  for (const [k, adapter] of adapters.entries()) {
    const swapStart = performance.now();
    const engine = await createEngineFromModel(model, {
      ...o,
      maxSlots: 0,
      maxRank: 1,
      weights: mergedWeights(model.weights, adapter),
    });
    swapMs += performance.now() - swapStart;
    tokens += (await generate(engine, [0], w, k)).tokens;
    await engine.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    seconds,
    prefillMs: Number.NaN,
    decodeStepMs: Number.NaN,
    tokens,
    swapMs: swapMs / adapters.length,
  };
}
