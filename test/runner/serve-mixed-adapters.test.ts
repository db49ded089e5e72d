// Rows for different adapters share one batch, and each row's output equals the same request run alone.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { type DemoDirs, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  const loras = [
    { name: "qv", path: await dirs.adapter("qv", { seed: 1, rank: 8 }) },
    {
      name: "all",
      path: await dirs.adapter("all", {
        seed: 2,
        rank: 4,
        targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
      }),
    },
    { name: "rs", path: await dirs.adapter("rs", { seed: 3, rank: 16, useRslora: true }) },
  ];
  t = await startTestRunner(dirs.model, { loras, maxLoras: 3, maxBatch: 8 });
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

const prompts = ["The quick brown fox", "Hello! How are you", "Water, wind and light"];
const models = ["demo-llama", "qv", "all", "rs"];

async function greedy(model: string, prompt: string): Promise<string> {
  const res = await t.post("/v1/completions", { model, prompt, max_tokens: 16, temperature: 0 });
  expect(res.status).toBe(200);
  return CompletionSchema.parse(await res.json()).choices[0]?.text ?? "";
}

describe("mixed-adapter batches", () => {
  it("each adapter changes the output (so the comparison below means something)", async () => {
    const outs = await Promise.all(models.map(async (m) => greedy(m, prompts[0] as string)));
    expect(new Set(outs).size).toBe(models.length);
  });

  it("gives every row of a mixed concurrent batch the output it gets alone", async () => {
    const cases = models.flatMap((model) => prompts.map((prompt) => ({ model, prompt })));
    const alone: string[] = [];
    for (const c of cases) alone.push(await greedy(c.model, c.prompt));
    const before = t.runner.deps.metrics.batchSize.render();
    const together = await Promise.all(cases.map((c) => greedy(c.model, c.prompt)));
    expect(together).toEqual(alone);
    // the concurrent run really batched: some step held more than 4 rows
    const after = t.runner.deps.metrics.batchSize.render();
    const over4 = (lines: string[]) => {
      const at = (le: string) => Number(lines.find((l) => l.includes(`le="${le}"`))?.split(" ")[1]);
      return at("+Inf") - at("4");
    };
    expect(over4(after)).toBeGreaterThan(over4(before));
  });
});
