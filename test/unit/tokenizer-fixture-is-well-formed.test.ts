// The tokenizer reference (test/fixtures/README.md) is made with the Python `tokenizers` library and committed;
// the JS tokenizer and chat template are checked against it. This checks the fixture keeps its promises.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { z } from "zod";

const FIXTURES = fileURLToPath(new URL("../fixtures/tokenizer/", import.meta.url));

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(`${FIXTURES}${path}`, "utf8"));
}

const SPECIALS = [
  "<|begin_of_text|>",
  "<|end_of_text|>",
  "<|start_header_id|>",
  "<|end_header_id|>",
  "<|eot_id|>",
];
const TokenizerJson = z.looseObject({
  added_tokens: z.array(z.looseObject({ id: z.int(), content: z.string(), special: z.boolean() })),
  model: z.looseObject({
    type: z.literal("BPE"),
    vocab: z.record(z.string(), z.int()),
    merges: z.array(z.unknown()),
  }),
});
const Ids = z.array(z.int().min(0));
const TokenizerExpected = z.strictObject({
  encodings: z.array(z.strictObject({ text: z.string(), ids: Ids, decoded: z.string() })).min(20),
  chat: z
    .array(
      z.strictObject({
        messages: z.array(z.strictObject({ role: z.string(), content: z.string() })).min(1),
        add_generation_prompt: z.literal(true),
        text: z.string(),
        ids: Ids,
      }),
    )
    .length(3),
});

describe("tokenizer fixture bpe-small", () => {
  const tokenizer = TokenizerJson.parse(readJson("bpe-small/tokenizer.json"));
  const special = new Map(tokenizer.added_tokens.map((t) => [t.content, t]));
  const size = Object.keys(tokenizer.model.vocab).length + tokenizer.added_tokens.length;
  const expected = TokenizerExpected.parse(readJson("expected.json"));

  it("is a byte-level BPE with the Llama 3 special tokens and chat template", () => {
    expect(size).toBeGreaterThan(256 + SPECIALS.length);
    for (const s of SPECIALS) expect(special.get(s)?.special, s).toBe(true);
    const config = z
      .looseObject({ chat_template: z.string(), bos_token: z.string(), eos_token: z.string() })
      .parse(readJson("bpe-small/tokenizer_config.json"));
    expect(config.chat_template).toContain("<|start_header_id|>");
    expect([config.bos_token, config.eos_token]).toEqual(["<|begin_of_text|>", "<|eot_id|>"]);
    expect(readJson("bpe-small/special_tokens_map.json")).toMatchObject({
      bos_token: config.bos_token,
    });
  });

  it("has encodings with in-vocabulary ids that decode back to the text", () => {
    for (const e of expected.encodings) {
      expect(e.ids.every((id) => id < size)).toBe(true);
      // Byte-level BPE loses nothing: decoding is the identity on any string.
      expect(e.decoded).toBe(e.text);
      expect(e.ids.length === 0).toBe(e.text === "");
    }
  });

  it("has chats rendered Llama 3 style, opening with the bos id", () => {
    const bos = special.get("<|begin_of_text|>")?.id;
    for (const c of expected.chat) {
      expect(c.text.startsWith("<|begin_of_text|>")).toBe(true);
      expect(c.text.endsWith("<|start_header_id|>assistant<|end_header_id|>\n\n")).toBe(true);
      expect(c.ids[0]).toBe(bos);
      expect(c.ids.every((id) => id < size)).toBe(true);
    }
  });
});
