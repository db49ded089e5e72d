// Writes the demo model: a small, seeded Llama-architecture model in Hugging Face's directory format.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeSafetensors } from "../../src/safetensors.ts";
import { type SpecialToken, tokenizerJson, trainBpe } from "./bpe.ts";
import { DEMO_CORPUS } from "./corpus.ts";
import { DEFAULT_DIMS, type DemoDims, llamaConfig, llamaWeights } from "./weights.ts";

const BYTE_AND_MERGE_TOKENS = 512;

// Llama 3's special tokens, so that the chat template below reads like the real one.
const SPECIAL_NAMES = [
  "<|begin_of_text|>",
  "<|end_of_text|>",
  "<|start_header_id|>",
  "<|end_header_id|>",
  "<|eot_id|>",
  "<|reserved_special_token_0|>",
  "<|reserved_special_token_1|>",
  "<|reserved_special_token_2|>",
];

export const DEMO_CHAT_TEMPLATE =
  "{{- bos_token }}{%- for message in messages %}" +
  "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}" +
  "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

export interface DemoModelOptions {
  out: string;
  seed?: number;
  dims?: DemoDims;
}

function specialsFrom(firstId: number): SpecialToken[] {
  return SPECIAL_NAMES.map((content, k) => ({ id: firstId + k, content }));
}

function tokenizerConfig(specials: SpecialToken[], maxPositions: number): Record<string, unknown> {
  const decoder = Object.fromEntries(
    specials.map((t) => [
      String(t.id),
      {
        content: t.content,
        lstrip: false,
        normalized: false,
        rstrip: false,
        single_word: false,
        special: true,
      },
    ]),
  );
  return {
    added_tokens_decoder: decoder,
    bos_token: "<|begin_of_text|>",
    eos_token: "<|eot_id|>",
    pad_token: null,
    chat_template: DEMO_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_input_names: ["input_ids", "attention_mask"],
    model_max_length: maxPositions,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json and generation_config.json. */
export async function writeDemoModel(options: DemoModelOptions): Promise<void> {
  const seed = options.seed ?? 0;
  const bpe = trainBpe(DEMO_CORPUS, BYTE_AND_MERGE_TOKENS);
  const specials = specialsFrom(bpe.vocab.size);
  const dims = { ...(options.dims ?? DEFAULT_DIMS), vocabSize: bpe.vocab.size + specials.length };
  const token = (content: string) => specials.find((t) => t.content === content) as SpecialToken;
  const bos = token("<|begin_of_text|>");
  const eosIds = [token("<|end_of_text|>").id, token("<|eot_id|>").id];
  await mkdir(options.out, { recursive: true });
  const files: [string, string | Uint8Array][] = [
    ["config.json", json(llamaConfig(dims, bos.id, eosIds))],
    ["generation_config.json", json({ bos_token_id: bos.id, eos_token_id: eosIds })],
    ["tokenizer.json", json(tokenizerJson(bpe, specials, bos))],
    ["tokenizer_config.json", json(tokenizerConfig(specials, dims.maxPositions))],
    ["model.safetensors", writeSafetensors(llamaWeights(dims, seed), { format: "pt" })],
  ];
  for (const [name, data] of files) await writeFile(join(options.out, name), data);
}
