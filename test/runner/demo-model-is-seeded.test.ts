import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeDemoModel } from "../../scripts/demo-model/index.ts";
import { readSafetensors, tensorBytes, toFloat32 } from "../../src/safetensors.ts";
import { type DemoDirs, makeDemoDirs } from "./serve-helpers.ts";

let a: DemoDirs;

beforeAll(async () => {
  a = await makeDemoDirs(7);
});
afterAll(() => a.cleanup());

async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) out.set(name, await readFile(join(dir, name)));
  return out;
}

describe("make-demo-model", () => {
  it("writes a Hugging Face Llama directory", async () => {
    expect([...(await filesOf(a.model)).keys()]).toEqual([
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const config = JSON.parse(await readFile(join(a.model, "config.json"), "utf8"));
    expect(config).toMatchObject({
      model_type: "llama",
      hidden_size: 256,
      num_hidden_layers: 4,
      vocab_size: 520,
    });
    expect(config.num_key_value_heads).toBeLessThan(config.num_attention_heads);
    const file = readSafetensors(await readFile(join(a.model, "model.safetensors")));
    const q = file.tensors.find((t) => t.name === "model.layers.3.self_attn.k_proj.weight");
    expect(q?.shape).toEqual([128, 256]);
    const embed = file.tensors.find((t) => t.name === "model.embed_tokens.weight");
    expect(embed?.shape).toEqual([520, 256]);
    const values = toFloat32("F32", tensorBytes(file, embed as NonNullable<typeof embed>));
    const std = Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
  });

  it("gives byte-identical files for the same seed and different weights for another", async () => {
    const same = join(a.root, "same");
    const other = join(a.root, "other");
    await writeDemoModel({ out: same, seed: 7 });
    await writeDemoModel({ out: other, seed: 8 });
    const [fa, fs, fo] = await Promise.all([filesOf(a.model), filesOf(same), filesOf(other)]);
    for (const [name, bytes] of fa) expect(fs.get(name)?.equals(bytes), name).toBe(true);
    expect(fo.get("model.safetensors")?.equals(fa.get("model.safetensors") as Buffer)).toBe(false);
    expect(fo.get("tokenizer.json")?.equals(fa.get("tokenizer.json") as Buffer)).toBe(true);
  });
});
