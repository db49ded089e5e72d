// The raw bytes of one token, for OpenAI's logprobs `bytes` field. A byte-level BPE token can hold part of
// a UTF-8 character, which no string can carry; its bytes come from inverting GPT-2's byte→character map.

function byteLevelTable(): Map<string, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Map<string, number>();
  for (const b of printable) table.set(String.fromCodePoint(b), b);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) table.set(String.fromCodePoint(256 + extra++), b);
  }
  return table;
}

/** Whether tokenizer.json decodes with ByteLevel (alone or inside a Sequence). */
export function usesByteLevel(json: Record<string, unknown>): boolean {
  const decoder = json.decoder as { type?: unknown; decoders?: { type?: unknown }[] } | null | undefined;
  if (!decoder) return false;
  if (decoder.type === "ByteLevel") return true;
  return decoder.type === "Sequence" && (decoder.decoders ?? []).some((d) => d.type === "ByteLevel");
}

export function createTokenBytes(
  byteLevel: boolean,
  idToToken: (id: number) => string | undefined,
  isAdded: (id: number) => boolean,
  decodeOne: (id: number) => string,
): (id: number) => number[] {
  const table = byteLevel ? byteLevelTable() : null;
  const encoder = new TextEncoder();
  return (id) => {
    const piece = idToToken(id);
    if (table === null || piece === undefined || isAdded(id)) return [...encoder.encode(decodeOne(id))];
    const bytes: number[] = [];
    for (const ch of piece) {
      const b = table.get(ch);
      if (b === undefined) return [...encoder.encode(decodeOne(id))];
      bytes.push(b);
    }
    return bytes;
  };
}
