// 4-bit block quantization of a linear's weight in the layout of onnxruntime's MatMulNBits (com.microsoft):
// W [N, K] (HF's [out, in]) in blocks of 32 along K, each block with its own scale and a 4-bit zero point
// (asymmetric round-to-nearest, as onnxruntime's own int4 quantizer does by default). Values pack two per byte,
// low nibble first; zero points likewise, per row. Dequantized: w = (q − zp) · scale.

export const INT4_BLOCK = 32;

export interface Int4Weight {
  /** [N, blocks, 16] */
  packed: Uint8Array;
  /** [N · blocks] */
  scales: Float32Array;
  /** [N · ceil(blocks / 2)] */
  zeroPoints: Uint8Array;
  blocks: number;
}

export function quantizeInt4(w: Float32Array, n: number, k: number): Int4Weight {
  const blocks = Math.ceil(k / INT4_BLOCK);
  const blob = INT4_BLOCK / 2;
  const zpBytes = Math.ceil(blocks / 2);
  const packed = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  const zeroPoints = new Uint8Array(n * zpBytes);
  const q = new Uint8Array(INT4_BLOCK);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const start = b * INT4_BLOCK;
      const end = Math.min(k, start + INT4_BLOCK);
      // The range always includes 0, so padding (zeros past K) and exact zeros stay exact.
      let min = 0;
      let max = 0;
      for (let i = start; i < end; i++) {
        const v = w[row * k + i] as number;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const scale = (max - min) / 15 || 1;
      const zp = Math.min(15, Math.max(0, Math.round(-min / scale)));
      q.fill(zp);
      for (let i = start; i < end; i++) {
        q[i - start] = Math.min(15, Math.max(0, Math.round((w[row * k + i] as number) / scale) + zp));
      }
      const base = (row * blocks + b) * blob;
      for (let j = 0; j < blob; j++)
        packed[base + j] = (q[2 * j] as number) | ((q[2 * j + 1] as number) << 4);
      scales[row * blocks + b] = scale;
      const zpAt = row * zpBytes + (b >> 1);
      zeroPoints[zpAt] = (zeroPoints[zpAt] as number) | (b & 1 ? zp << 4 : zp);
    }
  }
  return { packed, scales, zeroPoints, blocks };
}

/** The weights a MatMulNBits node computes with, back in [N, K] float32 (for checks and accuracy figures). */
export function dequantizeInt4(q: Int4Weight, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  const blob = INT4_BLOCK / 2;
  const zpBytes = Math.ceil(q.blocks / 2);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < q.blocks; b++) {
      const zpByte = q.zeroPoints[row * zpBytes + (b >> 1)] as number;
      const zp = b & 1 ? zpByte >> 4 : zpByte & 15;
      const scale = q.scales[row * q.blocks + b] as number;
      for (let i = 0; i < INT4_BLOCK && b * INT4_BLOCK + i < k; i++) {
        const byte = q.packed[(row * q.blocks + b) * blob + (i >> 1)] as number;
        const value = i & 1 ? byte >> 4 : byte & 15;
        out[row * k + b * INT4_BLOCK + i] = (value - zp) * scale;
      }
    }
  }
  return out;
}
