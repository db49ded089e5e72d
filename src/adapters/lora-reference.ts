// The naive LoRA linear every fast path is tested against: tensor code is checked against a plain
// reference (docs/architecture.md#invariants). Deliberately plain loops.

/** Infers [n, in, out, r] from the buffer lengths: w/b = in/r and a = r·in give in² = a·w/b. */
function dims(
  x: Float32Array,
  w: Float32Array,
  a: Float32Array,
  b: Float32Array,
): [number, number, number, number] {
  const inF = Math.round(Math.sqrt((a.length * w.length) / b.length));
  const r = a.length / inF;
  const out = w.length / inF;
  const n = x.length / inF;
  if (![r, out, n].every(Number.isInteger) || out * r !== b.length || inF === 0) {
    throw new RangeError(
      `loraLinear: lengths x=${x.length} w=${w.length} a=${a.length} b=${b.length} fit no [n,in] [out,in] [r,in] [out,r]`,
    );
  }
  return [n, inF, out, r];
}

/**
 * y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ (+ bias). x: [n, in], w: [out, in], a: [r, in], b: [out, r], bias: [out];
 * returns y: [n, out]. Accumulates in float64 so it is a reference for float32 kernels, not a peer.
 */
export function loraLinear(
  x: Float32Array,
  w: Float32Array,
  a: Float32Array,
  b: Float32Array,
  scale: number,
  bias?: Float32Array,
): Float32Array {
  const [n, inF, out, r] = dims(x, w, a, b);
  const y = new Float32Array(n * out);
  const xa = new Float64Array(r);
  for (let i = 0; i < n; i++) {
    const row = x.subarray(i * inF, (i + 1) * inF);
    for (let k = 0; k < r; k++) xa[k] = dot(row, a, k * inF, inF);
    for (let o = 0; o < out; o++) {
      let lora = 0;
      for (let k = 0; k < r; k++) lora += (xa[k] as number) * (b[o * r + k] as number);
      y[i * out + o] = dot(row, w, o * inF, inF) + scale * lora + (bias?.[o] ?? 0);
    }
  }
  return y;
}

function dot(row: Float32Array, m: Float32Array, offset: number, len: number): number {
  let sum = 0;
  for (let j = 0; j < len; j++) sum += (row[j] as number) * (m[offset + j] as number);
  return sum;
}

/** W + s·B·A: the merged weight [out, in] (PEFT `merge`), for checking that merging equals adding. */
export function mergeLora(w: Float32Array, a: Float32Array, b: Float32Array, scale: number): Float32Array {
  const inF = Math.round(Math.sqrt((a.length * w.length) / b.length));
  const r = a.length / inF;
  const out = w.length / inF;
  const merged = new Float32Array(w.length);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < inF; j++) {
      let delta = 0;
      for (let k = 0; k < r; k++) delta += (b[o * r + k] as number) * (a[k * inF + j] as number);
      merged[o * inF + j] = (w[o * inF + j] as number) + scale * delta;
    }
  }
  return merged;
}
