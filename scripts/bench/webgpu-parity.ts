// `node scripts/bench/webgpu-parity.ts [--device webgpu] [--backend native] [--engines ...]`: the HF fixture
// parity check (test/runner/engine-matches-hf-fixtures.test.ts) as a plain script, for machines without
// vitest (the GPU machine). Per engine and model: the worst relative logit error and the worst top-5
// log-probability difference against HF PEFT in float32, and greedy agreement. float32 engines must stay
// under `--tolerance` (relative logit error); float16 ones under `--logprobTolerance` on the top 5.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import type { Precision } from "../../gpu-runner/engine/onnx/fused-decoder.ts";
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

function logSoftmax(values: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) max = Math.max(max, values[i] as number);
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += Math.exp((values[i] as number) - max);
  const lse = max + Math.log(sum);
  return Float64Array.from({ length: values.length }, (_, i) => (values[i] as number) - lse);
}

/** Largest |ours − HF| over the log-probabilities of HF's five most likely tokens. */
function top5LogprobDiff(actual: Float32Array, expected: number[]): number {
  const [a, e] = [logSoftmax(actual), logSoftmax(expected)];
  const top = Array.from(e.keys())
    .sort((x, y) => (e[y] as number) - (e[x] as number))
    .slice(0, 5);
  return Math.max(...top.map((i) => Math.abs((a[i] as number) - (e[i] as number))));
}

interface Errors {
  error: number;
  logprob: number;
}

async function check(engine: Engine, c: Case): Promise<Errors & { greedyOk: boolean }> {
  const seq = engine.createSequence(c.adapter === null ? 0 : ADAPTERS.indexOf(c.adapter) + 1);
  let logits = (await engine.step([{ seq, tokens: c.input_ids }]))[0] as Float32Array;
  const error = relativeError(logits, c.last_logits);
  const logprob = top5LogprobDiff(logits, c.last_logits);
  const greedy = [argmax(logits)];
  while (greedy.length < c.greedy.length) {
    logits = (await engine.step([{ seq, tokens: [greedy.at(-1) as number] }]))[0] as Float32Array;
    greedy.push(argmax(logits));
  }
  engine.release(seq);
  return { error, logprob, greedyOk: greedy.join() === c.greedy.join() };
}

/** All rows prefilled in one step and decoded together, then one row leaves and the rest go on. */
async function checkMixed(engine: Engine, cases: Case[]): Promise<Errors & { ok: boolean }> {
  const seqs = cases.map((c) =>
    engine.createSequence(c.adapter === null ? 0 : ADAPTERS.indexOf(c.adapter) + 1),
  );
  const first = await engine.step(cases.map((c, i) => ({ seq: seqs[i] as number, tokens: c.input_ids })));
  const error = Math.max(...first.map((l, i) => relativeError(l, (cases[i] as Case).last_logits)));
  const logprob = Math.max(...first.map((l, i) => top5LogprobDiff(l, (cases[i] as Case).last_logits)));
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
  return { error, logprob, ok };
}

interface EngineChoice {
  label: string;
  graph: "fused" | "primitive";
  loraPath?: LoraPath;
  precision?: Precision;
  splitK?: number | boolean;
}

const ENGINES: Record<string, EngineChoice> = {
  dense: { label: "primitive graph, dense LoRA path, float32", graph: "primitive", loraPath: "dense" },
  gather: { label: "primitive graph, gather LoRA path, float32", graph: "primitive", loraPath: "gather" },
  fused32: { label: "fused graph, float32", graph: "fused", precision: "float32" },
  fused16: { label: "fused graph, float16", graph: "fused", precision: "float16" },
  // The fixtures' products are too small for the default split-K rule: slices of 16 make them split.
  "fused16-split": {
    label: "fused graph, float16, split-K (slices of 16)",
    graph: "fused",
    precision: "float16",
    splitK: 16,
  },
};

const command = defineCommand({
  meta: { name: "webgpu-parity", description: "Engine vs the HF fixtures on a given device" },
  args: {
    device: { type: "string", default: "webgpu" },
    backend: { type: "string", default: "native" },
    fixtures: { type: "string", default: "test/fixtures/hf" },
    tolerance: { type: "string", default: "1e-3" },
    logprobTolerance: { type: "string", default: "2e-2" },
    engines: {
      type: "string",
      default: Object.keys(ENGINES).join(","),
      description: `comma-separated: ${Object.keys(ENGINES).join(", ")}`,
    },
  },
  async run({ args }) {
    let failed = false;
    const choices = args.engines.split(",").map((name) => {
      const choice = ENGINES[name];
      if (!choice)
        throw new Error(`--engines: unknown engine "${name}" (known: ${Object.keys(ENGINES).join(", ")})`);
      return choice;
    });
    for (const choice of choices)
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
          graph: choice.graph,
          ...(choice.loraPath ? { loraPath: choice.loraPath } : {}),
          ...(choice.precision ? { precision: choice.precision } : {}),
          ...(choice.splitK !== undefined ? { splitK: choice.splitK } : {}),
        });
        const { spec, weights } = await loadHfModel(dir);
        weights.close();
        for (const [i, name] of ADAPTERS.entries())
          engine.setSlot(i + 1, readPeftDir(join(dir, "adapters", name), spec));
        let worst = 0;
        let worstLogprob = 0;
        let greedyOk = 0;
        for (const c of expected.cases) {
          const r = await check(engine, c);
          worst = Math.max(worst, r.error);
          worstLogprob = Math.max(worstLogprob, r.logprob);
          if (r.greedyOk) greedyOk += 1;
        }
        const mixed = await checkMixed(engine, expected.mixed_batch);
        await engine.dispose();
        const close =
          choice.precision === "float16"
            ? Math.max(worstLogprob, mixed.logprob) < Number(args.logprobTolerance)
            : Math.max(worst, mixed.error) < Number(args.tolerance);
        const ok = close && greedyOk === expected.cases.length && mixed.ok;
        console.log(
          `     mixed batch of ${expected.mixed_batch.length}: max relative error ${mixed.error.toExponential(2)}, top-5 logprob diff ${mixed.logprob.toExponential(2)}, greedy ${mixed.ok ? "equal" : "DIFFERENT"}`,
        );
        failed ||= !ok;
        console.log(
          `${ok ? "ok  " : "FAIL"} ${model} on ${args.device}/${args.backend}, ${choice.label}: max relative logit error ${worst.toExponential(2)}, top-5 logprob diff ${worstLogprob.toExponential(2)}, greedy ${greedyOk}/${expected.cases.length} cases equal`,
        );
      }
    if (failed) process.exitCode = 1;
  },
});

await runMain(command);
