// The model directory's generation_config.json supplies sampling defaults where a request leaves the field
// out, as vLLM's --generation-config auto: here temperature 0 makes requests without temperature greedy
// whatever their seed, while an explicit temperature still samples. A bad value stops the runner at start-up,
// naming the file and the field.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import { readSamplingDefaults } from "../../gpu-runner/serving/generation-defaults.ts";
import { buildRunner } from "../../gpu-runner/serving/runtime.ts";
import { type Completion, CompletionSchema } from "../../src/contracts/openai.ts";
import { type DemoDirs, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;
let config: Record<string, unknown>;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  const path = join(dirs.model, "generation_config.json");
  config = JSON.parse(await readFile(path, "utf8"));
  await writeFile(
    path,
    JSON.stringify({ ...config, do_sample: true, temperature: 0, top_k: 50, top_p: 0.9 }),
  );
  t = await startTestRunner(dirs.model);
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

async function complete(body: Record<string, unknown>): Promise<Completion> {
  const res = await t.post("/v1/completions", {
    model: "demo-llama",
    prompt: "The quick brown fox",
    max_tokens: 10,
    return_token_ids: true,
    ...body,
  });
  const json = await res.json();
  expect(res.status, JSON.stringify(json)).toBe(200);
  return CompletionSchema.parse(json);
}

const ids = (out: Completion) => out.choices[0]?.token_ids;

describe("generation_config.json defaults", () => {
  it("are read from the model directory; transformers' own top_k default is dropped as vLLM drops it", () => {
    expect(t.runner.deps.samplingDefaults).toEqual({ temperature: 0, topP: 0.9 });
  });

  it("apply where the request leaves the field out", async () => {
    const greedy = ids(await complete({ temperature: 0 }));
    expect(ids(await complete({ seed: 1 }))).toEqual(greedy);
    expect(ids(await complete({ seed: 2 }))).toEqual(greedy);
    expect(ids(await complete({ seed: 1, temperature: null }))).toEqual(greedy);
  });

  it("give way to the request's own value", async () => {
    const greedy = ids(await complete({ temperature: 0 }));
    const sampled = await Promise.all([1, 2, 3].map((seed) => complete({ seed, temperature: 1.5 })));
    expect(sampled.some((out) => JSON.stringify(ids(out)) !== JSON.stringify(greedy))).toBe(true);
  });

  it("read repetition_penalty, min_p and top_k too; -1 turns top_k off", async () => {
    const dir = join(dirs.root, "defaults");
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, "generation_config.json"),
      JSON.stringify({ repetition_penalty: 1.1, min_p: 0.05, top_k: 20, temperature: null }),
    );
    expect(await readSamplingDefaults(dir)).toEqual({ repetitionPenalty: 1.1, minP: 0.05, topK: 20 });
    await writeFile(join(dir, "generation_config.json"), JSON.stringify({ top_k: -1 }));
    expect(await readSamplingDefaults(dir)).toEqual({ topK: 0 });
    expect(await readSamplingDefaults(join(dirs.root, "nowhere"))).toEqual({});
  });

  it("a bad value stops the runner at start-up, naming the file, the field and the value", async () => {
    const path = join(dirs.model, "generation_config.json");
    const good = await readFile(path, "utf8");
    await writeFile(path, JSON.stringify({ ...config, top_p: 0 }));
    try {
      await expect(
        buildRunner(
          {
            model: dirs.model,
            loras: [],
            device: "cpu",
            backend: "native",
            maxLoras: 1,
            maxLoraRank: 8,
            maxBatch: 1,
            maxQueue: 1,
            threads: 1,
            runnerToken: null,
          },
          createEngine,
        ),
      ).rejects.toMatchObject({
        code: "invalid_model",
        message: expect.stringMatching(/generation_config\.json: top_p: .*; got 0$/),
      });
    } finally {
      await writeFile(path, good);
    }
  });
});
