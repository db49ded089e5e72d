// Incremental detokenisation for streaming. Decoding one token at a time breaks multi-byte characters
// (a byte-level token may hold half of "日") and drops spaces that depend on the previous token, so, like
// vLLM and TGI, we decode a window of recent tokens and emit only text that has become stable.

export type DecodeFn = (ids: number[]) => string;

const REPLACEMENT = "\uFFFD";

export interface StreamDecoder {
  /** Adds one token; returns the text that is now final (possibly ""). */
  push(id: number): string;
  /** Returns whatever is still held back (an incomplete character at the very end). */
  flush(): string;
}

export function createStreamDecoder(decode: DecodeFn): StreamDecoder {
  const ids: number[] = [];
  // ids[prefix..read) were decoded already; decoding from `prefix` gives the left context for spacing
  let prefix = 0;
  let read = 0;
  return {
    push(id) {
      ids.push(id);
      const before = decode(ids.slice(prefix, read));
      const after = decode(ids.slice(prefix));
      if (after.length <= before.length || after.endsWith(REPLACEMENT)) return "";
      prefix = read;
      read = ids.length;
      return after.slice(before.length);
    },
    flush() {
      if (read === ids.length) return "";
      const before = decode(ids.slice(prefix, read));
      const after = decode(ids.slice(prefix));
      read = ids.length;
      return after.slice(before.length);
    },
  };
}
