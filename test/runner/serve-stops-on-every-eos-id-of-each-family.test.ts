// Each family ends a turn on several ids (generation_config.json's eos_token_id list: eos and the
// end-of-turn token, as Gemma, Llama 3, Phi-3 and Qwen ship them). The runner stops on any of them, as
// transformers' generate() does: a step that samples one finishes the choice with "stop" and that id as
// its last token; a step that samples another id goes on to max_tokens. The sampled id is forced with
// logit_bias, so each eos id is tried whatever the tiny model's weights prefer.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { startTestRunner, type TestRunner } from "./serve-helpers.ts";

const FAMILIES = ["tiny-qwen3", "tiny-gemma2", "tiny-gemma3", "tiny-phi3"] as const;
const PROMPT = [3, 77, 140, 9, 201];

const eosIdsOf = (name: string) =>
  z
    .looseObject({ eos_token_id: z.array(z.number().int()).min(2) })
    .parse(JSON.parse(readFileSync(join("test/fixtures/hf", name, "generation_config.json"), "utf8")))
    .eos_token_id;

describe.each(FAMILIES)("%s", (name) => {
  let t: TestRunner;
  const eosIds = eosIdsOf(name);

  beforeAll(async () => {
    t = await startTestRunner(join("test/fixtures/hf", name));
  });
  afterAll(async () => {
    await t?.close();
  });

  async function forced(id: number) {
    const res = await t.post("/v1/completions", {
      model: name,
      prompt: PROMPT,
      max_tokens: 4,
      temperature: 0,
      logit_bias: { [id]: 100 },
    });
    const json = await res.json();
    expect(res.status, JSON.stringify(json)).toBe(200);
    return CompletionSchema.parse(json).choices[0];
  }

  it("stops on every eos id of generation_config.json", async () => {
    expect(t.runner.deps.stopTokenIds).toEqual(expect.arrayContaining(eosIds));
    for (const id of eosIds) {
      const choice = await forced(id);
      expect([choice?.finish_reason, choice?.token_ids]).toEqual(["stop", [id]]);
    }
  });

  it("runs to max_tokens on an id that is not one of them", async () => {
    const other = [9, 10, 11].find((id) => !eosIds.includes(id)) as number;
    const choice = await forced(other);
    expect([choice?.finish_reason, choice?.token_ids]).toEqual(["length", [other, other, other, other]]);
  });
});
