// Runs training graphs in onnxruntime: one session per padded length (and per forward-only/backward), the
// base weights inside each session as initializers; only LoRA tensors, tokens and loss weights are fed per
// run. Gradients of accumulated micro-batches are summed here, then clipped and applied by optimizer.ts.

import { createRng, type Rng } from "../../src/random.ts";
import type { HfModel } from "../engine/model/hf-model.ts";
import { usesLongFrequencies } from "../engine/model/rope.ts";
import type { Session } from "../engine/ort-backend.ts";
import { createSession, type Ort } from "../engine/ort-backend.ts";
import { countTargets, type Feeds, makeFeeds, type TokenRow } from "./batches.ts";
import { type LoraParams, tensorsOf } from "./lora-params.ts";
import {
  clipGradients,
  createOptimizerState,
  learningRate,
  type OptimizerConfig,
  type OptimizerState,
  optimizerStep,
} from "./optimizer.ts";
import { buildTrainGraph, trainIo } from "./train-graph.ts";

export interface TrainerOptions {
  model: HfModel;
  params: LoraParams;
  optimizer: OptimizerConfig;
  /** Rows per micro-batch (one graph run). */
  batchSize: number;
  threads: number;
  /** LoRA dropout probability (PEFT's lora_dropout). */
  dropout: number;
  seed: number;
  /** Sessions kept open (one per padded length and mode). */
  maxSessions?: number;
}

export interface StepResult {
  loss: number;
  gradNorm: number;
  lr: number;
  tokens: number;
  targets: number;
}

interface OpenSession {
  ort: Ort;
  session: Session;
}

function addInto(sum: Float32Array[], grads: Float32Array[]): void {
  grads.forEach((g, k) => {
    const s = sum[k] as Float32Array;
    for (let i = 0; i < s.length; i++) s[i] = (s[i] as number) + (g[i] as number);
  });
}

export class LoraTrainer {
  readonly options: TrainerOptions;
  readonly state: OptimizerState;
  private readonly sessions = new Map<string, Promise<OpenSession>>();
  private readonly rng: Rng;

  constructor(options: TrainerOptions, state?: OptimizerState) {
    this.options = options;
    this.state = state ?? createOptimizerState(tensorsOf(options.params));
    this.rng = createRng(options.seed);
  }

  get params(): LoraParams {
    return this.options.params;
  }

  /**
   * Whether these rows read LongRoPE's long frequencies: HF picks them for a whole forward pass when its
   * longest position passes the original context, and a micro-batch is padded to its longest row there.
   */
  private longRope(rows: TokenRow[]): boolean {
    const longest = Math.max(0, ...rows.map((r) => r.tokens.length));
    return usesLongFrequencies(this.options.model.rope, longest);
  }

  private session(seq: number, backward: boolean, longRope: boolean): Promise<OpenSession> {
    const key = `${seq}:${backward}:${longRope}`;
    const open = this.sessions.get(key);
    if (open) {
      this.sessions.delete(key);
      this.sessions.set(key, open);
      return open;
    }
    const { model, params, batchSize, threads, dropout } = this.options;
    const graph = buildTrainGraph({
      decoder: model.decoder,
      ropes: model.ropes,
      longRope,
      weights: model.weights,
      modules: params.modules,
      batch: batchSize,
      seq,
      dropout: backward && dropout > 0,
      backward,
      trainBase: new Set((params.base ?? []).map((t) => t.name)),
    });
    const created = createSession(graph, { device: "cpu", backend: "native", threads });
    this.sessions.set(key, created);
    this.evict();
    return created;
  }

  private evict(): void {
    const max = this.options.maxSessions ?? 3;
    for (const [key, s] of this.sessions) {
      if (this.sessions.size <= max) break;
      this.sessions.delete(key);
      void s.then((o) => o.session.release());
    }
  }

  private feeds(ort: Ort, f: Feeds, backward: boolean): Record<string, InstanceType<Ort["Tensor"]>> {
    const n = f.batch * f.seq;
    const feeds: Record<string, InstanceType<Ort["Tensor"]>> = {
      [trainIo.inputIds]: new ort.Tensor("int64", f.inputIds, [f.batch, f.seq]),
      [trainIo.targets]: new ort.Tensor("int64", f.targets, [n, 1]),
      [trainIo.lossWeights]: new ort.Tensor("float32", f.lossWeights, [n]),
    };
    const { params, dropout } = this.options;
    for (const t of params.base ?? [])
      feeds[trainIo.base(t.name)] = new ort.Tensor("float32", t.data, t.dims);
    params.modules.forEach((m, k) => {
      feeds[trainIo.a(m.name)] = new ort.Tensor("float32", params.a[k] as Float32Array, [
        m.rank,
        m.inFeatures,
      ]);
      feeds[trainIo.b(m.name)] = new ort.Tensor("float32", params.b[k] as Float32Array, [
        m.outFeatures,
        m.rank,
      ]);
      if (backward && dropout > 0) {
        const keep = 1 / (1 - dropout);
        const mask = Float32Array.from({ length: n * m.inFeatures }, () =>
          this.rng.nextFloat() < dropout ? 0 : keep,
        );
        feeds[trainIo.dropMask(m.name)] = new ort.Tensor("float32", mask, [f.batch, f.seq, m.inFeatures]);
      }
    });
    return feeds;
  }

  /** Loss and LoRA gradients of one micro-batch, each target weighted `weightPerTarget`. */
  async gradients(rows: TokenRow[], seq: number, weightPerTarget: number) {
    const f = makeFeeds(rows, this.options.batchSize, seq, weightPerTarget);
    const { ort, session } = await this.session(seq, true, this.longRope(rows));
    const out = await session.run(this.feeds(ort, f, true));
    const { modules } = this.options.params;
    const read = (name: string) => out[name]?.data as Float32Array;
    const grads = [
      ...modules.map((m) => read(trainIo.gradA(m.name))),
      ...modules.map((m) => read(trainIo.gradB(m.name))),
      ...(this.options.params.base ?? []).map((t) => read(trainIo.gradBase(t.name))),
    ];
    return { loss: Number(read(trainIo.loss)[0]), grads, tokens: f.tokenCount, targets: f.targetCount };
  }

  /**
   * One optimizer step over micro-batches (gradient accumulation): the loss is the mean over every target of
   * the step. `step` and `totalSteps` drive the learning-rate schedule.
   */
  async step(microBatches: TokenRow[][], seq: number, totalSteps: number): Promise<StepResult> {
    const total = microBatches.reduce((n, rows) => n + countTargets(rows), 0);
    const weight = 1 / Math.max(1, total);
    let sum: Float32Array[] | null = null;
    let loss = 0;
    let tokens = 0;
    for (const rows of microBatches) {
      const r = await this.gradients(rows, seq, weight);
      loss += r.loss;
      tokens += r.tokens;
      if (!sum) sum = r.grads.map((g) => Float32Array.from(g));
      else addInto(sum, r.grads);
    }
    const grads = sum ?? [];
    const gradNorm = clipGradients(grads, this.options.optimizer.maxGradNorm);
    const lr = learningRate(this.options.optimizer, this.state.step, totalSteps);
    const { params } = this.options;
    optimizerStep(this.options.optimizer, this.state, tensorsOf(params), grads, lr);
    return { loss, gradNorm, lr, tokens, targets: total };
  }

  /** Sum of −log p over the rows' targets and their count (no gradients). */
  async evaluate(rows: TokenRow[], seq: number): Promise<{ nllSum: number; targets: number }> {
    let nllSum = 0;
    let targets = 0;
    for (let i = 0; i < rows.length; i += this.options.batchSize) {
      const batch = rows.slice(i, i + this.options.batchSize);
      const { ort, session } = await this.session(seq, false, this.longRope(batch));
      const f = makeFeeds(batch, this.options.batchSize, seq, 1);
      const out = await session.run(this.feeds(ort, f, false), [trainIo.loss]);
      nllSum += Number((out[trainIo.loss]?.data as Float32Array | undefined)?.[0]);
      targets += f.targetCount;
    }
    return { nllSum, targets };
  }

  async dispose(): Promise<void> {
    const open = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of open) await (await s).session.release();
  }
}
