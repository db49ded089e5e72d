// A small seeded PRNG (xoshiro128** seeded through splitmix32). Sampling and the demo model need
// reproducible randomness per seed; Math.random() cannot be seeded.

export interface Rng {
  /** Uniform 32-bit unsigned integer. */
  nextU32(): number;
  /** Uniform in [0, 1). */
  nextFloat(): number;
  /** Standard normal (Box–Muller). */
  nextNormal(): number;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Folds any safe integer (OpenAI seeds may be 64-bit-ish) into 32 bits without losing the high part. */
export function foldSeed(seed: number): number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer; got ${seed}`);
  const low = seed % 0x1_0000_0000;
  const high = Math.floor(seed / 0x1_0000_0000);
  return (low ^ Math.imul(high, 0x9e3779b1)) >>> 0;
}

export function createRng(seed: number): Rng {
  const init = splitmix32(foldSeed(seed));
  let a = init();
  let b = init();
  let c = init();
  let d = init();
  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  const nextFloat = (): number => nextU32() / 0x1_0000_0000;
  const nextNormal = (): number => {
    // 1 - u keeps the log argument in (0, 1]
    const u = 1 - nextFloat();
    const v = nextFloat();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  return { nextU32, nextFloat, nextNormal };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
