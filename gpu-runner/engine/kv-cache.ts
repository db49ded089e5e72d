// Per-sequence KV caches kept in batch blocks: per layer one [B, KVH, C, D] buffer that the graph reads as
// past (unused positions masked) and the engine appends each step's new K/V to, so steady decoding copies
// only the new tokens' K/V. When the batch changes (rows join, leave or reorder) or a block is full, the
// rows' real positions are gathered, compacted and right-aligned into a fresh block.

/** Capacity grows in steps of this many positions (bounded wasted attention, few regathers). */
const CAPACITY_STEP = 64;

export interface KvDims {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

export interface KvBlock {
  /** Per layer, [B, KVH, C, D]. */
  keys: Float32Array[];
  values: Float32Array[];
  batch: number;
  capacity: number;
  /** Positions written so far (the same for every row: padding is written too, and masked). */
  used: number;
}

export interface KvRow {
  block: KvBlock | null;
  row: number;
  /** Per used position of the block: 1 where this row has a real token. */
  valid: Uint8Array;
  /** Real tokens cached. */
  length: number;
}

export function emptyRow(): KvRow {
  return { block: null, row: 0, valid: new Uint8Array(0), length: 0 };
}

/** The block `rows` can step in as they are: exactly its rows, in order, with room for `seq` more positions. */
export function reusableBlock(rows: KvRow[], seq: number): KvBlock | null {
  const block = rows[0]?.block;
  if (!block || block.batch !== rows.length || block.used + seq > block.capacity) return null;
  return rows.every((r, i) => r.block === block && r.row === i) ? block : null;
}

/** Runs of consecutive valid positions, [start, end). */
function validRuns(valid: Uint8Array): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  for (let j = 0; j <= valid.length; j++) {
    const on = j < valid.length && valid[j] === 1;
    if (on && start < 0) start = j;
    if (!on && start >= 0) {
      runs.push([start, j]);
      start = -1;
    }
  }
  return runs;
}

function gatherInto(
  out: Float32Array,
  rows: KvRow[],
  dims: KvDims,
  block: KvBlock,
  pick: (b: KvBlock) => Float32Array,
): void {
  const { numKvHeads: heads, headDim: d } = dims;
  rows.forEach((r, b) => {
    if (!r.block || r.length === 0) return;
    const src = pick(r.block);
    const runs = validRuns(r.valid);
    for (let h = 0; h < heads; h++) {
      const srcHead = (r.row * heads + h) * r.block.capacity;
      let dst = ((b * heads + h) * block.capacity + block.used - r.length) * d;
      for (const [start, end] of runs) {
        out.set(src.subarray((srcHead + start) * d, (srcHead + end) * d), dst);
        dst += (end - start) * d;
      }
    }
  });
}

/**
 * A fresh block for `rows` with room for `seq` new positions; each row's real positions are right-aligned
 * in [0, used). Rows are re-pointed at it.
 */
export function gatherBlock(rows: KvRow[], dims: KvDims, seq: number): KvBlock {
  // At least one (masked) position, so no device ever sees a zero-length past tensor.
  const used = Math.max(1, ...rows.map((r) => r.length));
  const capacity = Math.ceil((used + seq) / CAPACITY_STEP) * CAPACITY_STEP;
  const size = rows.length * dims.numKvHeads * capacity * dims.headDim;
  const block: KvBlock = { keys: [], values: [], batch: rows.length, capacity, used };
  for (let l = 0; l < dims.numLayers; l++) {
    const keys = new Float32Array(size);
    const values = new Float32Array(size);
    gatherInto(keys, rows, dims, block, (b) => b.keys[l] as Float32Array);
    gatherInto(values, rows, dims, block, (b) => b.values[l] as Float32Array);
    block.keys.push(keys);
    block.values.push(values);
  }
  rows.forEach((r, b) => {
    const valid = new Uint8Array(used);
    valid.fill(1, used - r.length);
    r.block = block;
    r.row = b;
    r.valid = valid;
  });
  return block;
}

/** Writes a step's new K/V ([B, KVH, T, D] per layer) at positions [used, used + T) and advances `used`. */
export function appendStep(
  block: KvBlock,
  dims: KvDims,
  keys: Float32Array[],
  values: Float32Array[],
  seq: number,
): void {
  const { numKvHeads: heads, headDim: d } = dims;
  for (let l = 0; l < dims.numLayers; l++) {
    const [dk, dv, sk, sv] = [block.keys[l], block.values[l], keys[l], values[l]] as Float32Array[];
    for (let bh = 0; bh < block.batch * heads; bh++) {
      const dst = (bh * block.capacity + block.used) * d;
      dk?.set((sk as Float32Array).subarray(bh * seq * d, (bh + 1) * seq * d), dst);
      dv?.set((sv as Float32Array).subarray(bh * seq * d, (bh + 1) * seq * d), dst);
    }
  }
  block.used += seq;
}
