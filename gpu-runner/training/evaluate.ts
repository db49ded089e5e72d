// Held-out loss and perplexity (the training graph, forward only) and exact-match accuracy of greedy output
// (the serving Engine, so the figure is what the runner will actually answer with the adapter).
import { createEngineFromModel } from "../engine/engine.ts";
import type { HfModel } from "../engine/model/hf-model.ts";
import { argmax } from "../engine/sampler.ts";
import type { RunnerTokenizer } from "../engine/tokenizer/index.ts";
import type { AdapterWeights } from "../engine/types.ts";
import { bucketLength } from "./batches.ts";
import type { Example } from "./data.ts";
import type { LoraParams } from "./lora-params.ts";
import type { LoraTrainer } from "./trainer.ts";

export interface EvalReport {
  loss: number;
  perplexity: number;
  targets: number;
  /** Among rows with a single expected answer; null when there are none. */
  exactMatch: number | null;
  exactMatchRows: number;
}

export async function heldOutLoss(
  trainer: LoraTrainer,
  examples: Example[],
): Promise<{ loss: number; targets: number }> {
  const byLength = new Map<number, Example[]>();
  for (const e of examples) {
    const seq = bucketLength(e.tokens.length);
    byLength.set(seq, [...(byLength.get(seq) ?? []), e]);
  }
  let nll = 0;
  let targets = 0;
  for (const [seq, rows] of byLength) {
    const r = await trainer.evaluate(rows, seq);
    nll += r.nllSum;
    targets += r.targets;
  }
  return { loss: targets > 0 ? nll / targets : Number.NaN, targets };
}

export function adapterWeights(p: LoraParams): AdapterWeights {
  return {
    modules: p.modules.map((m, k) => ({
      module: m.name,
      rank: m.rank,
      scale: m.scale,
      a: p.a[k] as Float32Array,
      b: p.b[k] as Float32Array,
    })),
  };
}

const normalise = (s: string) => s.trim().replace(/\s+/g, " ").toLowerCase();

/** Greedy answers for rows that have one expected answer; the share that equals it (trimmed, case-folded). */
export async function exactMatch(
  model: HfModel,
  tok: RunnerTokenizer,
  params: LoraParams | null,
  examples: Example[],
  threads: number,
): Promise<{ accuracy: number | null; rows: number }> {
  const rows = examples.filter((e) => e.prompt && e.answer !== undefined);
  if (rows.length === 0) return { accuracy: null, rows: 0 };
  const maxRank = Math.max(1, ...(params?.modules.map((m) => m.rank) ?? [1]));
  const engine = await createEngineFromModel(model, { maxSlots: params ? 1 : 0, maxRank, threads });
  try {
    if (params) engine.setSlot(1, adapterWeights(params));
    let hits = 0;
    for (const e of rows) {
      const answer = await greedy(
        engine,
        params ? 1 : 0,
        e.prompt as number[],
        tok,
        e.answer as string,
        model.eosTokenIds,
      );
      if (normalise(answer) === normalise(e.answer as string)) hits += 1;
    }
    return { accuracy: hits / rows.length, rows: rows.length };
  } finally {
    await engine.dispose();
  }
}

async function greedy(
  engine: Awaited<ReturnType<typeof createEngineFromModel>>,
  slot: number,
  prompt: number[],
  tok: RunnerTokenizer,
  expected: string,
  eos: number[],
): Promise<string> {
  // Enough tokens for the expected answer and a little more: a longer answer is wrong anyway.
  const limit = tok.encode(expected, { addSpecialTokens: false }).length + 4;
  const seq = engine.createSequence(slot);
  const out: number[] = [];
  try {
    let next = prompt;
    for (let i = 0; i < limit; i++) {
      const [logits] = await engine.step([{ seq, tokens: next }]);
      const id = argmax(logits as Float32Array);
      if (eos.includes(id)) break;
      out.push(id);
      next = [id];
    }
  } finally {
    engine.release(seq);
  }
  return tok.decode(out, { skipSpecialTokens: true });
}
