// The same runner on onnxruntime-web (WASM) where native binaries are missing: same greedy answers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { type DemoDirs, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let native: TestRunner;
let wasm: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  const loras = [{ name: "qv", path: await dirs.adapter("qv", { seed: 4 }) }];
  native = await startTestRunner(dirs.model, { loras });
  wasm = await startTestRunner(dirs.model, { loras, backend: "wasm" });
});
afterAll(async () => {
  await native?.close();
  await wasm?.close();
  await dirs?.cleanup();
});

async function texts(t: TestRunner): Promise<string[]> {
  const res = await t.post("/v1/completions", {
    model: "qv",
    prompt: ["The quick brown fox", "Hello"],
    max_tokens: 12,
    temperature: 0,
  });
  return CompletionSchema.parse(await res.json()).choices.map((c) => c.text);
}

describe("--backend wasm", () => {
  it("serves the same greedy completions as native", async () => {
    const health = await (await wasm.app.request("/health")).json();
    expect(health).toMatchObject({ backend: "wasm", device: "cpu" });
    expect(await texts(wasm)).toEqual(await texts(native));
  });
});
