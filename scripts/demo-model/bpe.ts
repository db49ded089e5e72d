// A deterministic byte-level BPE trainer and the `tokenizer.json` it produces, in the layout Hugging Face
// `tokenizers` writes for GPT-2 / Llama 3 style tokenizers: 256 byte tokens, learned merges, added specials.

// GPT-2's pre-tokenizer regex, as the ByteLevel pre-tokenizer applies it with `use_regex: true`.
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's `bytes_to_unicode`: each byte maps to a printable character, so tokens are valid strings. */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array(256);
  for (const b of printable) table[b] = String.fromCodePoint(b);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCodePoint(256 + extra++);
  }
  return table;
}

export interface BpeModel {
  /** Token string → id; ids 0..255 are the byte tokens in byte order. */
  vocab: Map<string, number>;
  merges: [string, string][];
}

function countWords(corpus: string, byteChars: string[]): Map<string, number> {
  const encoder = new TextEncoder();
  const counts = new Map<string, number>();
  for (const match of corpus.matchAll(GPT2_SPLIT)) {
    const word = Array.from(encoder.encode(match[0]), (b) => byteChars[b] as string).join("");
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return counts;
}

function bestPair(words: { symbols: string[]; count: number }[]): [string, string] | null {
  const pairCounts = new Map<string, number>();
  for (const { symbols, count } of words) {
    for (let i = 0; i + 1 < symbols.length; i++) {
      const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
    }
  }
  let best: string | null = null;
  let bestCount = 0;
  for (const [key, count] of pairCounts) {
    // ties go to the lexicographically smallest pair, so the result never depends on iteration order
    if (count > bestCount || (count === bestCount && best !== null && key < best)) {
      best = key;
      bestCount = count;
    }
  }
  if (best === null) return null;
  const [a, b] = best.split("\u0000") as [string, string];
  return [a, b];
}

function applyMerge(symbols: string[], a: string, b: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (symbols[i] === a && symbols[i + 1] === b) {
      out.push(a + b);
      i++;
    } else out.push(symbols[i] as string);
  }
  return out;
}

/** Learns merges from `corpus` until the vocabulary holds `vocabSize` tokens (or no pair is left). */
export function trainBpe(corpus: string, vocabSize: number): BpeModel {
  const byteChars = bytesToUnicode();
  const vocab = new Map<string, number>();
  for (const [id, ch] of byteChars.entries()) vocab.set(ch, id);
  const words = [...countWords(corpus, byteChars)].map(([word, count]) => ({ symbols: [...word], count }));
  const merges: [string, string][] = [];
  while (vocab.size < vocabSize) {
    const pair = bestPair(words);
    if (pair === null) break;
    const [a, b] = pair;
    merges.push(pair);
    if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
    for (const word of words) word.symbols = applyMerge(word.symbols, a, b);
  }
  return { vocab, merges };
}

export interface SpecialToken {
  id: number;
  content: string;
}

function addedToken(t: SpecialToken) {
  return {
    id: t.id,
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  };
}

/** The `tokenizer.json` document; `bos` is prepended by the post-processor when special tokens are added. */
export function tokenizerJson(model: BpeModel, specials: SpecialToken[], bos: SpecialToken): unknown {
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map(addedToken),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos.content, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos.content, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: bos.content, type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [bos.content]: { id: bos.content, ids: [bos.id], tokens: [bos.content] } },
    },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(model.vocab),
      merges: model.merges,
    },
  };
}
