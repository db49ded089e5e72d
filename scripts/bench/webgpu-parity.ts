// `node scripts/bench/webgpu-parity.ts [--device webgpu] [--backend native]`: the HF fixture parity check
// (test/runner/engine-matches-hf-fixtures.test.ts) as a plain script, for machines without vitest (the GPU
// machine). Prints the worst relative logit error and greedy agreement per model; exits 1 past `--tolerance`.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import type { LoraPath } from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import type { Backend, Device, Engine } from "../../gpu-runner/engine/types.ts";

const ADAPTERS = ["qv", "all7", "patterns"];

interface Case {
  adapter: string | null;
  input_ids: number[];
  last_logits: number[];
  greedy: number[];
}

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

function relativeError(actual: Float32Array, expected: number[]): number {
  let diff = 0;
  let scale = 0;
  for (const [i, e] of expected.entries()) {
    diff = Math.max(diff, Math.abs((actual[i] as number) - e));
    scale = Math.max(scale, Math.abs(e));
  }
  return diff / scale;
}

async function check(engine: Engine, c: Case): Promise<{ error: number; greedyOk: boolean }> {
  const seq = engine.createSequence(c.adapter === null ? 0 : ADAPTERS.indexOf(c.adapter) + 1);
  let logits = (await engine.step([{ seq, tokens: c.input_ids }]))[0] as Float32Array;
  const error = relativeError(logits, c.last_logits);
  const greedy = [argmax(logits)];
  while (greedy.length < c.greedy.length) {
    logits = (await engine.step([{ seq, tokens: [greedy.at(-1) as number] }]))[0] as Float32Array;
    greedy.push(argmax(logits));
  }
  engine.release(seq);
  return { error, greedyOk: greedy.join() === c.greedy.join() };
}

/** All rows prefilled in one step and decoded together, then one row leaves and the rest go on. */
async function checkMixed(engine: Engine, cases: Case[]): Promise<{ error: number; ok: boolean }> {
  const seqs = cases.map((c) =>
    engine.createSequence(c.adapter === null ? 0 : ADAPTERS.indexOf(c.adapter) + 1),
  );
  const first = await engine.step(cases.map((c, i) => ({ seq: seqs[i] as number, tokens: c.input_ids })));
  const error = Math.max(...first.map((l, i) => relativeError(l, (cases[i] as Case).last_logits)));
  const greedy = first.map((l) => [argmax(l)]);
  let live = seqs.map((_, i) => i);
  for (let t = 1; t < 8; t++) {
    if (t === 4) {
      engine.release(seqs[0] as number);
      live = live.slice(1);
    }
    const out = await engine.step(
      live.map((i) => ({ seq: seqs[i] as number, tokens: [(greedy[i] as number[]).at(-1) as number] })),
    );
    for (const [k, i] of live.entries()) greedy[i]?.push(argmax(out[k] as Float32Array));
  }
  for (const i of live) engine.release(seqs[i] as number);
  const ok = cases.every(
    (c, i) => (greedy[i] as number[]).join() === c.greedy.slice(0, (greedy[i] as number[]).length).join(),
  );
  return { error, ok };
}

const command = defineCommand({
  meta: { name: "webgpu-parity", description: "Engine vs the HF fixtures on a given device" },
  args: {
    device: { type: "string", default: "webgpu" },
    backend: { type: "string", default: "native" },
    fixtures: { type: "string", default: "test/fixtures/hf" },
    tolerance: { type: "string", default: "1e-3" },
    loraPath: { type: "string", default: "both", description: "dense, gather or both" },
  },
  async run({ args }) {
    let failed = false;
    const paths = args.loraPath === "both" ? ["dense", "gather"] : [args.loraPath];
    for (const loraPath of paths)
      for (const model of ["tiny-llama", "tiny-llama3", "tiny-qwen2"]) {
        const dir = join(args.fixtures, model);
        const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as {
          cases: Case[];
          mixed_batch: Case[];
        };
        const engine = await createEngine({
          modelDir: dir,
          device: args.device as Device,
          backend: args.backend as Backend,
          maxSlots: 3,
          maxRank: 8,
          loraPath: loraPath as LoraPath,
        });
        const { spec, weights } = await loadHfModel(dir);
        weights.close();
        for (const [i, name] of ADAPTERS.entries())
          engine.setSlot(i + 1, readPeftDir(join(dir, "adapters", name), spec));
        let worst = 0;
        let greedyOk = 0;
        for (const c of expected.cases) {
          const r = await check(engine, c);
          worst = Math.max(worst, r.error);
          if (r.greedyOk) greedyOk += 1;
        }
        const mixed = await checkMixed(engine, expected.mixed_batch);
        await engine.dispose();
        const ok = worst < Number(args.tolerance) && greedyOk === expected.cases.length && mixed.ok;
        console.log(
          `     mixed batch of ${expected.mixed_batch.length}: max relative error ${mixed.error.toExponential(2)}, greedy ${mixed.ok ? "equal" : "DIFFERENT"}`,
        );
        failed ||= !ok;
        console.log(
          `${ok ? "ok  " : "FAIL"} ${model} on ${args.device}/${args.backend}, ${loraPath} LoRA path: max relative logit error ${worst.toExponential(2)}, greedy ${greedyOk}/${expected.cases.length} cases equal`,
        );
      }
    if (failed) process.exitCode = 1;
  },
});

await runMain(command);
