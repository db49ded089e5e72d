// The Hugging Face reference fixtures in test/fixtures/hf (transformers + PEFT, float32; see
// test/fixtures/README.md) and the greedy run the parity tests compare them with.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { Engine, SequenceId } from "../../gpu-runner/engine/types.ts";
import { argmax } from "./naive-llama.ts";

export const FIXTURES = join(import.meta.dirname, "..", "fixtures", "hf");
export const MODELS = ["tiny-llama", "tiny-llama3", "tiny-qwen2"];
/** Adapter names in slot order: adapter i sits in slot i + 1; slot 0 is the base. */
export const ADAPTERS = ["qv", "all7", "patterns"];

const CaseSchema = z.strictObject({
  adapter: z.enum(ADAPTERS).nullable(),
  input_ids: z.array(z.number().int()).min(1),
  last_logits: z.array(z.number()).length(256),
  greedy: z.array(z.number().int()).length(8),
});
const ExpectedSchema = z.looseObject({
  cases: z.array(CaseSchema).min(8),
  mixed_batch: z.array(CaseSchema).min(2),
});
export type Case = z.infer<typeof CaseSchema>;

export function readExpected(modelDir: string): z.infer<typeof ExpectedSchema> {
  return ExpectedSchema.parse(JSON.parse(readFileSync(join(modelDir, "expected.json"), "utf8")));
}

export const slotOf = (adapter: string | null) => (adapter === null ? 0 : ADAPTERS.indexOf(adapter) + 1);

/**
 * The family fixtures (qwen3, gemma2, gemma3_text, phi3; test/fixtures/README.md, "Families"): 12 greedy
 * tokens, prompts of 5 and 20 tokens (longer than each sliding window), adapters `all-linear` and `attn`.
 */
export const FAMILY_MODELS = ["tiny-qwen3", "tiny-gemma2", "tiny-gemma3", "tiny-phi3"];
export const FAMILY_ADAPTERS = ["all-linear", "attn"];
export const FAMILY_TOKENS = 12;

const FamilyCaseSchema = z.strictObject({
  adapter: z.enum(FAMILY_ADAPTERS).nullable(),
  input_ids: z.array(z.number().int()).min(1),
  last_logits: z.array(z.number()).length(256),
  greedy: z.array(z.number().int()).length(FAMILY_TOKENS),
});
const FamilyExpectedSchema = z.looseObject({
  cases: z.array(FamilyCaseSchema).length(6),
  mixed_batch: z.array(FamilyCaseSchema).length(4),
});
export type FamilyCase = z.infer<typeof FamilyCaseSchema>;

export function readFamilyExpected(modelDir: string): z.infer<typeof FamilyExpectedSchema> {
  return FamilyExpectedSchema.parse(JSON.parse(readFileSync(join(modelDir, "expected.json"), "utf8")));
}

export const familySlotOf = (adapter: string | null) =>
  adapter === null ? 0 : FAMILY_ADAPTERS.indexOf(adapter) + 1;

/** Prefill all rows in one step, then decode them together; returns the prefill logits and the greedy tokens. */
export async function runGreedy(
  engine: Engine,
  cases: Case[],
): Promise<{ logits: Float32Array[]; greedy: number[][] }> {
  return runGreedySteps(engine, cases, 8, slotOf);
}

/** `runGreedy` for `steps` tokens, each case's slot given by `slot`. */
export async function runGreedySteps(
  engine: Engine,
  cases: { adapter: string | null; input_ids: number[] }[],
  steps: number,
  slot: (adapter: string | null) => number,
): Promise<{ logits: Float32Array[]; greedy: number[][] }> {
  const seqs: SequenceId[] = cases.map((c) => engine.createSequence(slot(c.adapter)));
  const first = await engine.step(cases.map((c, i) => ({ seq: seqs[i] as number, tokens: c.input_ids })));
  const greedy = first.map((l) => [argmax(l)]);
  for (let t = 1; t < steps; t++) {
    const next = await engine.step(
      seqs.map((seq, i) => ({ seq, tokens: [(greedy[i] as number[]).at(-1) as number] })),
    );
    for (const [i, l] of next.entries()) greedy[i]?.push(argmax(l));
  }
  for (const seq of seqs) engine.release(seq);
  return { logits: first, greedy };
}
