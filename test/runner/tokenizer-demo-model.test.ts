import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createStopMatcher,
  loadTokenizer,
  type RunnerTokenizer,
} from "../../gpu-runner/engine/tokenizer/index.ts";
import { type DemoDirs, makeDemoDirs } from "./serve-helpers.ts";

let dirs: DemoDirs;
let tok: RunnerTokenizer;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  tok = await loadTokenizer(dirs.model);
});
afterAll(() => dirs.cleanup());

function streamed(ids: number[]): string[] {
  const decoder = tok.createStreamDecoder();
  const chunks = ids.map((id) => decoder.push(id));
  chunks.push(decoder.flush());
  return chunks;
}

describe("demo tokenizer", () => {
  it("round-trips text with the BOS the post-processor adds", () => {
    const text = "Hello world! The quick brown fox, 42 times. Grüße, 日本語 🙂";
    const ids = tok.encode(text);
    expect(ids[0]).toBe(512);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(text);
    expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids.slice(1));
    expect(tok.eosTokenId).toBe(516);
    expect(tok.vocabSize).toBe(520);
  });

  it("renders the chat template with the generation prompt and no second BOS", () => {
    const messages = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi there" },
    ];
    const text = tok.renderChat(messages, { addGenerationPrompt: true });
    expect(text).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    const ids = tok.encodeChat(messages, { addGenerationPrompt: true });
    expect(ids.filter((id) => id === 512)).toHaveLength(1);
    expect(tok.renderChat(messages, { addGenerationPrompt: false }).endsWith("<|eot_id|>")).toBe(true);
  });

  it("streams multi-byte characters whole, never as broken UTF-8", () => {
    const text = " 日本語 and émoji 🙂 ok";
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids.length).toBeGreaterThan([...text].length - 5);
    const chunks = streamed(ids);
    expect(chunks.join("")).toBe(text);
    for (const chunk of chunks) expect(chunk).not.toContain("\uFFFD");
    // byte tokens split the emoji: some pushes must emit nothing
    expect(chunks.filter((c) => c === "").length).toBeGreaterThan(0);
  });

  it("streams special tokens as nothing and keeps spaces between words", () => {
    const ids = [...tok.encode("The sea was calm"), 516];
    expect(streamed(ids).join("")).toBe("The sea was calm");
  });
});

describe("model directory variants", () => {
  it("prefers chat_template.jinja and reads bos/eos from special_tokens_map.json", async () => {
    const dir = join(dirs.root, "variant");
    await mkdir(dir);
    await copyFile(join(dirs.model, "tokenizer.json"), join(dir, "tokenizer.json"));
    const config = JSON.parse(await readFile(join(dirs.model, "tokenizer_config.json"), "utf8"));
    const { bos_token: bos, eos_token: eos, ...rest } = config;
    await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(rest));
    await writeFile(
      join(dir, "special_tokens_map.json"),
      JSON.stringify({ bos_token: { content: bos }, eos_token: eos }),
    );
    await writeFile(
      join(dir, "chat_template.jinja"),
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}",
    );
    const variant = await loadTokenizer(dir);
    expect(variant.renderChat([{ role: "user", content: "hi" }], { addGenerationPrompt: true })).toBe(
      "<|begin_of_text|>[user] hi",
    );
    expect(variant.eosTokenId).toBe(516);
  });

  it("refuses chat for a model without a template, naming the way out", async () => {
    const dir = join(dirs.root, "no-template");
    await mkdir(dir);
    await copyFile(join(dirs.model, "tokenizer.json"), join(dir, "tokenizer.json"));
    const bare = await loadTokenizer(dir);
    expect(() => bare.renderChat([{ role: "user", content: "hi" }], { addGenerationPrompt: true })).toThrow(
      "no chat template",
    );
    expect(bare.decode(bare.encode("plain text"), { skipSpecialTokens: true })).toBe("plain text");
  });
});

describe("stop strings", () => {
  it("holds back a possible stop string and cuts at the first match", () => {
    const m = createStopMatcher(["END", "\n\n"]);
    expect(m.push("hello E")).toEqual({ text: "hello ", stopped: false });
    expect(m.push("N")).toEqual({ text: "", stopped: false });
    expect(m.push("Dless")).toEqual({ text: "", stopped: true });
  });

  it("releases held text once it can no longer match", () => {
    const m = createStopMatcher(["END"]);
    expect(m.push("EN")).toEqual({ text: "", stopped: false });
    expect(m.push("x")).toEqual({ text: "ENx", stopped: false });
    expect(m.push("E")).toEqual({ text: "", stopped: false });
    expect(m.flush()).toBe("E");
  });

  it("finds the earliest of several stops inside one chunk", () => {
    const m = createStopMatcher(["b", "a"]);
    expect(m.push("xxabyy")).toEqual({ text: "xx", stopped: true });
  });
});
