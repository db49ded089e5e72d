// Our tokenizer stack (@huggingface/tokenizers + @huggingface/jinja) against Python tokenizers/transformers
// on a Llama-3-style BPE tokenizer (test/fixtures/tokenizer, see its README).
import { readFile } from "node:fs/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer, type RunnerTokenizer } from "../../gpu-runner/engine/tokenizer/index.ts";

interface Expected {
  encodings: { text: string; ids: number[]; decoded: string }[];
  chat: {
    messages: { role: string; content: string }[];
    add_generation_prompt: boolean;
    text: string;
    ids: number[];
  }[];
}

const dir = "test/fixtures/tokenizer/bpe-small";
let tok: RunnerTokenizer;
let expected: Expected;

beforeAll(async () => {
  tok = await loadTokenizer(dir);
  expected = JSON.parse(await readFile("test/fixtures/tokenizer/expected.json", "utf8"));
});

describe("tokenizer parity with Hugging Face", () => {
  it("encodes every reference text to the same ids and decodes them back the same", () => {
    expect(expected.encodings.length).toBeGreaterThan(10);
    for (const e of expected.encodings) {
      expect(tok.encode(e.text, { addSpecialTokens: false }), JSON.stringify(e.text)).toEqual(e.ids);
      expect(tok.decode(e.ids), JSON.stringify(e.text)).toBe(e.decoded);
    }
  });

  it("adds the post-processor's BOS by default", () => {
    const first = expected.encodings.find((e) => e.ids.length > 0) as Expected["encodings"][number];
    expect(tok.encode(first.text)).toEqual([400, ...first.ids]);
    expect(tok.eosTokenId).toBe(404);
  });

  it("streams every reference text token by token to the same text, without broken characters", () => {
    for (const e of expected.encodings) {
      const decoder = tok.createStreamDecoder();
      const chunks = e.ids.map((id) => decoder.push(id));
      chunks.push(decoder.flush());
      expect(chunks.join(""), JSON.stringify(e.text)).toBe(tok.decode(e.ids, { skipSpecialTokens: true }));
      for (const chunk of chunks) expect(chunk).not.toContain("\uFFFD");
    }
  });

  it("renders the chat template and tokenizes it as apply_chat_template does", () => {
    expect(expected.chat.length).toBeGreaterThan(0);
    for (const c of expected.chat) {
      const options = { addGenerationPrompt: c.add_generation_prompt };
      expect(tok.renderChat(c.messages, options)).toBe(c.text);
      expect(tok.encodeChat(c.messages, options)).toEqual(c.ids);
    }
  });
});
