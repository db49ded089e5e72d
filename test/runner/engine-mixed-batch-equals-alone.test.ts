// Batching must not change results: rows for different adapters, at different positions, prefilling and
// decoding in the same step, joining and leaving between steps, each get what they get when run alone.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import type { Backend, Engine } from "../../gpu-runner/engine/types.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import { argmax, relativeError } from "../helpers/naive-llama.ts";
import { prompt, TINY_ADAPTERS, writeTinyModels } from "../helpers/tiny-models.ts";

const ADAPTER_NAMES = Object.keys(TINY_ADAPTERS);
// Same math, different padding: only float summation order may differ.
const TOLERANCE = 1e-5;
let root = "";

beforeAll(() => {
  root = writeTinyModels();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Request {
  slot: number;
  tokens: number[];
}

/** Logits after the prompt and after each of `steps` greedy tokens, the request alone. */
async function alone(engine: Engine, r: Request, steps: number): Promise<Float32Array[]> {
  const seq = engine.createSequence(r.slot);
  const out = [(await engine.step([{ seq, tokens: r.tokens }]))[0] as Float32Array];
  for (let i = 0; i < steps; i++)
    out.push((await engine.step([{ seq, tokens: [argmax(out[i] as Float32Array)] }]))[0] as Float32Array);
  engine.release(seq);
  return out;
}

describe.each(["native", "wasm"] as Backend[])("mixed batches on %s CPU", (backend) => {
  let engine: Engine;
  const requests: Request[] = [
    { slot: 1, tokens: prompt(5, 1) },
    { slot: 0, tokens: prompt(17, 2) },
    { slot: 3, tokens: prompt(9, 3) },
    { slot: 2, tokens: prompt(1, 4) },
    { slot: 1, tokens: prompt(12, 5) },
  ];

  beforeAll(async () => {
    const dir = join(root, "tiny-qwen2");
    engine = await createEngine({ modelDir: dir, backend, maxSlots: 3, maxRank: 8 });
    const { spec, weights } = await loadHfModel(dir);
    weights.close();
    for (const [i, name] of ADAPTER_NAMES.entries())
      engine.setSlot(i + 1, readPeftDir(join(dir, "adapters", name), spec));
  });
  afterAll(() => engine.dispose());

  it("rows of different adapters and prompt lengths, prefilled and decoded together, equal each alone", async () => {
    const expected: Float32Array[][] = [];
    for (const r of requests) expected.push(await alone(engine, r, 4));
    const seqs = requests.map((r) => engine.createSequence(r.slot));
    let logits = await engine.step(requests.map((r, i) => ({ seq: seqs[i] as number, tokens: r.tokens })));
    for (let step = 0; step <= 4; step++) {
      for (const [i, l] of logits.entries()) {
        expect(relativeError(l, (expected[i] as Float32Array[])[step] as Float32Array)).toBeLessThan(
          TOLERANCE,
        );
      }
      if (step === 4) break;
      logits = await engine.step(
        seqs.map((seq, i) => ({ seq, tokens: [argmax(logits[i] as Float32Array)] })),
      );
    }
    for (const seq of seqs) engine.release(seq);
  });

  it("a prompt prefilled in chunks, beside another row decoding, equals the prompt prefilled at once", async () => {
    const r = requests[1] as Request;
    const [want] = await alone(engine, r, 0);
    const other = engine.createSequence(2);
    await engine.step([{ seq: other, tokens: prompt(3, 9) }]);
    const seq = engine.createSequence(r.slot);
    await engine.step([
      { seq, tokens: r.tokens.slice(0, 7) },
      { seq: other, tokens: [4] },
    ]);
    const [got] = await engine.step([
      { seq, tokens: r.tokens.slice(7) },
      { seq: other, tokens: [5] },
    ]);
    expect(relativeError(got as Float32Array, want as Float32Array)).toBeLessThan(TOLERANCE);
    engine.release(seq);
    engine.release(other);
  });

  it("requests joining and leaving between steps (continuous batching) equal each alone", async () => {
    const [a, b, c] = requests as [Request, Request, Request];
    const want = [await alone(engine, a, 6), await alone(engine, b, 6), await alone(engine, c, 6)];
    const seqA = engine.createSequence(a.slot);
    const seqB = engine.createSequence(b.slot);
    const seqC = engine.createSequence(c.slot);
    const got: Float32Array[][] = [[], [], []];
    const next = (k: number) => [argmax(got[k]?.at(-1) as Float32Array)];
    const record = (ks: number[], out: Float32Array[]) => {
      for (const [i, k] of ks.entries()) got[k]?.push(out[i] as Float32Array);
    };
    record([0], await engine.step([{ seq: seqA, tokens: a.tokens }]));
    record([0], await engine.step([{ seq: seqA, tokens: next(0) }]));
    // B prefills 17 tokens in the same step as A decodes one.
    record(
      [0, 1],
      await engine.step([
        { seq: seqA, tokens: next(0) },
        { seq: seqB, tokens: b.tokens },
      ]),
    );
    record(
      [0, 1],
      await engine.step([
        { seq: seqA, tokens: next(0) },
        { seq: seqB, tokens: next(1) },
      ]),
    );
    // C joins in front, then A leaves: the rows' caches move to new batch positions.
    record(
      [2, 0, 1],
      await engine.step([
        { seq: seqC, tokens: c.tokens },
        { seq: seqA, tokens: next(0) },
        { seq: seqB, tokens: next(1) },
      ]),
    );
    engine.release(seqA);
    for (let i = 0; i < 3; i++)
      record(
        [1, 2],
        await engine.step([
          { seq: seqB, tokens: next(1) },
          { seq: seqC, tokens: next(2) },
        ]),
      );
    for (let k = 0; k < 3; k++) {
      const rows = got[k] as Float32Array[];
      expect(rows.length).toBeGreaterThan(3);
      for (const [step, l] of rows.entries()) {
        expect(relativeError(l, (want[k] as Float32Array[])[step] as Float32Array)).toBeLessThan(TOLERANCE);
      }
    }
    engine.release(seqB);
    engine.release(seqC);
  });
});
