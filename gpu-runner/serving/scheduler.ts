// Continuous batching over an Engine. Between engine steps requests join (prefill) and leave (finished,
// cancelled); every step's rows may use different adapter slots. Prefill of newly admitted requests is
// interleaved with decode steps of the running ones, so a long prompt delays running rows by one step,
// not by its whole generation. A request that asks for prompt logprobs is scored first (see Active.scoring).
import { setImmediate as nextTick } from "node:timers/promises";
import { AppError } from "../../src/errors.ts";
import { createRng, type Rng } from "../../src/random.ts";
import {
  type PromptTokenLogprobs,
  type SampledToken,
  type SamplingParams,
  sampleToken,
  tokenLogprobs,
} from "../engine/sampler.ts";
import type { Engine, SequenceId, StepRow } from "../engine/types.ts";
import type { RunnerMetrics } from "./metrics.ts";

export interface GenerationRequest {
  promptIds: number[];
  /** Engine adapter slot (0 = base model); the caller holds the slot for the request's lifetime. */
  slot: number;
  /** Adapter content id metrics count by ("base" for none); never a display name. */
  adapter: string;
  /**
   * The name the request asked for its adapter by (its `model`), null for the base: vLLM lists running and
   * waiting adapters by that name in `vllm:lora_requests_info`. Shown there only, never counted by.
   */
  lora?: string | null;
  maxTokens: number;
  sampling: SamplingParams;
  seed: number | null;
  /**
   * Tokens that end generation (eos unless ignore_eos, and stop_token_ids); they are counted and reported in
   * the end, never passed to onToken.
   */
  stopTokenIds: number[];
  /** vLLM's min_tokens: the stop tokens cannot be sampled before this many tokens exist. */
  minTokens?: number;
  /** vLLM's prompt_logprobs: alternatives per prompt token; null or absent scores no prompt. */
  promptLogprobs?: number | null;
  signal?: AbortSignal;
}

export type FinishReason = "stop" | "length" | "cancelled";

export interface GenerationEnd {
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** The stop token (eos) that ended generation, when one did: vLLM lists it in `token_ids`, not in text. */
  stopTokenId?: number;
  /** That stop token as sampled, with its logprobs (vLLM reports them too). */
  stopToken?: SampledToken;
  /** Per prompt token, when asked for: null for the first, then each token's logprobs given those before it. */
  promptLogprobs?: (PromptTokenLogprobs | null)[];
}

export interface GenerationSink {
  /** Returns true to stop here (a stop string matched). */
  onToken(token: SampledToken): boolean | undefined;
  onEnd(end: GenerationEnd): void;
  onError(error: Error): void;
}

/**
 * What the scheduler reports as requests move, for latency metrics (vLLM's series, vllm-metrics.ts). Times are
 * seconds measured by the scheduler's clock from when submit() accepted the request.
 */
export interface SchedulerObserver {
  /** A request joined the running batch; its prompt is about to be prefilled. */
  admitted(req: GenerationRequest): void;
  /** A token was sampled: `first` with the time since arrival, else the time since the previous token. */
  sampled(req: GenerationRequest, first: boolean, seconds: number): void;
  /** A request ended (not by an engine failure) after `seconds` in all. */
  finished(req: GenerationRequest, reason: FinishReason, seconds: number): void;
}

/** What the batch and the queue hold now, read by gauges at scrape time. */
export interface SchedulerSnapshot {
  /** Requests in the running batch that have not finished. */
  running: number;
  waiting: number;
  /** Adapter names (`lora`) of running and of waiting requests, each once. */
  runningLoras: string[];
  waitingLoras: string[];
  /** Positions held in the KV cache by running requests. */
  kvTokens: number;
  /** The most the running batch can hold: maxBatch sequences of the model's context length. */
  kvCapacity: number;
}

export interface SchedulerOptions {
  engine: Engine;
  /** Most rows in the running batch. */
  maxBatch: number;
  /** Most requests waiting to join the batch; beyond it submit() refuses with queue_full. */
  maxQueue: number;
  /** Most prompt tokens prefilled in one step (longer prompts are prefilled in chunks). */
  prefillTokens?: number;
  metrics?: RunnerMetrics;
  observer?: SchedulerObserver;
  /** Monotonic clock in milliseconds for the observer's latencies; performance.now by default. */
  now?: () => number;
}

interface Active {
  req: GenerationRequest;
  sink: GenerationSink;
  rng: Rng;
  seq: SequenceId | null;
  /** Prompt tokens already in the KV cache. */
  fed: number;
  /** The last sampled token, fed in the next decode step. */
  pending: number | null;
  generated: number;
  /** Generated token → times, for presence/frequency penalties. */
  counts: Map<number, number>;
  /** The prompt's distinct tokens, when the repetition penalty needs them. */
  promptSet: ReadonlySet<number> | undefined;
  /**
   * Prompt logprobs need the logits at every prompt position, and the engine gives only a row's last. So the
   * prompt is first stepped one token at a time on a sequence of its own (`seq` during this phase; `fed`
   * counts the tokens stepped); that sequence is then released and the prompt prefilled as any other, so the
   * completion is the one the request gets without prompt_logprobs. Cost: prompt length − 1 extra steps.
   */
  scoring: { fed: number } | null;
  promptLogprobs: (PromptTokenLogprobs | null)[] | null;
  done: boolean;
  cancelled: boolean;
  /** Removes the abort listener, so a long-lived signal does not keep finished requests alive. */
  detach: () => void;
  /** When submit() accepted it, and when its latest token was sampled (the scheduler's clock, ms). */
  arrivedAt: number;
  lastTokenAt: number | null;
}

function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] as number;
}

export class Scheduler {
  private readonly engine: Engine;
  private readonly maxBatch: number;
  private readonly maxQueue: number;
  private readonly prefillTokens: number;
  private readonly metrics: RunnerMetrics | undefined;
  private readonly observer: SchedulerObserver | undefined;
  private readonly now: () => number;
  private readonly waiting: Active[] = [];
  private running: Active[] = [];
  private looping = false;
  private closed = false;

  constructor(options: SchedulerOptions) {
    for (const key of ["maxBatch", "maxQueue"] as const) {
      const value = options[key];
      if (!Number.isSafeInteger(value) || value < (key === "maxBatch" ? 1 : 0)) {
        throw new RangeError(
          `scheduler ${key} must be an integer >= ${key === "maxBatch" ? 1 : 0}; got ${value}`,
        );
      }
    }
    this.engine = options.engine;
    this.maxBatch = options.maxBatch;
    this.maxQueue = options.maxQueue;
    this.prefillTokens = options.prefillTokens ?? 512;
    this.metrics = options.metrics;
    this.observer = options.observer;
    this.now = options.now ?? (() => performance.now());
  }

  get queueDepth(): number {
    return this.waiting.length;
  }

  get runningCount(): number {
    return this.running.length;
  }

  snapshot(): SchedulerSnapshot {
    const live = this.running.filter((a) => !a.done);
    const loras = (rows: Active[]) => [
      ...new Set(rows.flatMap((a) => (a.req.lora == null ? [] : [a.req.lora]))),
    ];
    // the last sampled token is fed (and cached) by the next decode step, so it holds no position yet
    const kvTokens = live.reduce(
      (sum, a) =>
        sum + (a.scoring === null ? a.fed + a.generated - (a.pending === null ? 0 : 1) : a.scoring.fed),
      0,
    );
    return {
      running: live.length,
      waiting: this.waiting.length,
      runningLoras: loras(live),
      waitingLoras: loras(this.waiting),
      kvTokens,
      kvCapacity: this.maxBatch * this.engine.info.maxPositions,
    };
  }

  /** Queues a request; throws queue_full (429) when the batch and the queue are both full. */
  submit(req: GenerationRequest, sink: GenerationSink): void {
    if (this.closed) throw new AppError("unavailable", "the runner is shutting down");
    if (this.running.length + this.waiting.length >= this.maxBatch + this.maxQueue) {
      throw new AppError(
        "queue_full",
        `queue is full: ${this.waiting.length} waiting (max ${this.maxQueue}) and ${this.running.length} running (max ${this.maxBatch}); retry later`,
      );
    }
    const active: Active = {
      req,
      sink,
      rng: createRng(req.seed ?? randomSeed()),
      seq: null,
      fed: 0,
      pending: null,
      generated: 0,
      counts: new Map(),
      promptSet: (req.sampling.repetitionPenalty ?? 1) !== 1 ? new Set(req.promptIds) : undefined,
      scoring: null,
      promptLogprobs: null,
      done: false,
      cancelled: false,
      detach: () => {},
      arrivedAt: this.now(),
      lastTokenAt: null,
    };
    const { signal } = req;
    if (signal?.aborted) {
      this.finish(active, "cancelled");
      return;
    }
    if (signal) {
      const onAbort = () => this.cancel(active);
      signal.addEventListener("abort", onAbort, { once: true });
      active.detach = () => signal.removeEventListener("abort", onAbort);
    }
    this.waiting.push(active);
    this.kick();
  }

  /** Refuses new work, cancels queued and running requests and waits for the loop to stop. */
  async close(): Promise<void> {
    this.closed = true;
    for (const a of [...this.waiting, ...this.running]) this.cancel(a);
    while (this.looping) await nextTick();
  }

  private cancel(active: Active): void {
    if (active.done) return;
    active.cancelled = true;
    const at = this.waiting.indexOf(active);
    if (at !== -1) {
      this.waiting.splice(at, 1);
      this.finish(active, "cancelled");
    }
    // a running row is reaped between steps: its sequence may be inside the step in flight
  }

  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    void this.loop().finally(() => {
      this.looping = false;
      if (this.waiting.length > 0 || this.running.length > 0) this.kick();
    });
  }

  private async loop(): Promise<void> {
    while (this.waiting.length > 0 || this.running.length > 0) {
      this.reap();
      this.admit();
      const prefill = this.running.filter(
        (a) => !a.done && a.scoring === null && a.fed < a.req.promptIds.length,
      );
      if (prefill.length > 0) await this.prefillStep(prefill);
      this.reap();
      const decode = this.running.filter((a) => !a.done && (a.pending !== null || a.scoring !== null));
      if (decode.length > 0) await this.decodeStep(decode);
      // let new requests and aborts arrive between steps
      await nextTick();
    }
  }

  private admit(): void {
    while (this.running.length < this.maxBatch && this.waiting.length > 0) {
      const active = this.waiting.shift() as Active;
      active.seq = this.engine.createSequence(active.req.slot);
      const { promptLogprobs, promptIds } = active.req;
      if (promptLogprobs != null) {
        active.promptLogprobs = [null];
        if (promptIds.length > 1) active.scoring = { fed: 0 };
      }
      this.running.push(active);
      this.metrics?.promptTokens.inc({ adapter_id: active.req.adapter }, active.req.promptIds.length);
      this.observer?.admitted(active.req);
    }
  }

  /** Drops finished and cancelled rows and frees their sequences (no step is in flight here). */
  private reap(): void {
    const keep: Active[] = [];
    for (const a of this.running) {
      if (a.cancelled && !a.done) this.finish(a, "cancelled");
      if (a.done) {
        if (a.seq !== null) this.engine.release(a.seq);
        a.seq = null;
      } else keep.push(a);
    }
    this.running = keep;
  }

  private async prefillStep(rows: Active[]): Promise<void> {
    let budget = this.prefillTokens;
    const chosen: { active: Active; tokens: number[] }[] = [];
    for (const active of rows) {
      if (budget <= 0) break;
      const tokens = active.req.promptIds.slice(active.fed, active.fed + budget);
      budget -= tokens.length;
      chosen.push({ active, tokens });
    }
    const logits = await this.step(
      chosen.map((c) => c.active),
      chosen.map((c) => ({ seq: c.active.seq as SequenceId, tokens: c.tokens })),
    );
    if (logits === null) return;
    chosen.forEach(({ active, tokens }, i) => {
      active.fed += tokens.length;
      if (active.fed === active.req.promptIds.length) this.accept(active, logits[i] as Float32Array);
    });
  }

  /** One token per row: the last sampled token, or the next prompt token of a row being scored. */
  private async decodeStep(rows: Active[]): Promise<void> {
    const logits = await this.step(
      rows,
      rows.map((a) => ({
        seq: a.seq as SequenceId,
        tokens: [a.scoring === null ? (a.pending as number) : (a.req.promptIds[a.scoring.fed] as number)],
      })),
    );
    if (logits === null) return;
    rows.forEach((active, i) => {
      if (active.scoring !== null) {
        this.score(active, logits[i] as Float32Array);
        return;
      }
      active.pending = null;
      this.accept(active, logits[i] as Float32Array);
    });
  }

  /** Records the logprobs of the prompt token after the one just stepped; swaps sequences after the last. */
  private score(active: Active, logits: Float32Array): void {
    const scoring = active.scoring;
    if (scoring === null || active.done || active.cancelled) return;
    const { promptIds, promptLogprobs, slot } = active.req;
    const next = promptIds[scoring.fed + 1] as number;
    active.promptLogprobs?.push(tokenLogprobs(logits, next, promptLogprobs ?? 0));
    scoring.fed++;
    if (scoring.fed < promptIds.length - 1) return;
    // no step is in flight here: the one that produced these logits has returned
    if (active.seq !== null) this.engine.release(active.seq);
    active.seq = this.engine.createSequence(slot);
    active.scoring = null;
  }

  /** Runs one engine step; on failure every row in it fails and null is returned. */
  private async step(actives: Active[], rows: StepRow[]): Promise<Float32Array[] | null> {
    this.metrics?.batchSize.observe(rows.length);
    try {
      return await this.engine.step(rows);
    } catch (error) {
      for (const a of actives) this.fail(a, error as Error);
      return null;
    }
  }

  /** Samples the next token from a row's logits and decides whether the row goes on. */
  private accept(active: Active, logits: Float32Array): void {
    if (active.done || active.cancelled) return;
    const { req } = active;
    // min_tokens holds the stop tokens back while fewer than that many tokens exist
    const suppress = active.generated < (req.minTokens ?? 0) ? req.stopTokenIds : undefined;
    const sampled = sampleToken(logits, req.sampling, active.rng, active.counts, {
      ...(active.promptSet ? { promptTokens: active.promptSet } : {}),
      ...(suppress ? { suppress } : {}),
    });
    active.generated++;
    active.counts.set(sampled.token, (active.counts.get(sampled.token) ?? 0) + 1);
    this.metrics?.generatedTokens.inc({ adapter_id: req.adapter });
    const at = this.now();
    const first = active.lastTokenAt === null;
    this.observer?.sampled(req, first, (at - (active.lastTokenAt ?? active.arrivedAt)) / 1000);
    active.lastTokenAt = at;
    if (req.stopTokenIds.includes(sampled.token)) {
      this.finish(active, "stop", sampled);
      return;
    }
    let stop: boolean | undefined;
    try {
      stop = active.sink.onToken(sampled);
    } catch (error) {
      this.fail(active, error as Error);
      return;
    }
    const length = req.promptIds.length + active.generated;
    if (stop) this.finish(active, "stop");
    else if (active.generated >= req.maxTokens || length >= this.engine.info.maxPositions)
      this.finish(active, "length");
    else active.pending = sampled.token;
  }

  private finish(active: Active, finishReason: FinishReason, stopToken?: SampledToken): void {
    if (active.done) return;
    active.done = true;
    active.detach();
    const end: GenerationEnd = {
      finishReason,
      promptTokens: active.req.promptIds.length,
      completionTokens: active.generated,
      ...(stopToken === undefined ? {} : { stopTokenId: stopToken.token, stopToken }),
      ...(active.promptLogprobs === null ? {} : { promptLogprobs: active.promptLogprobs }),
    };
    this.observer?.finished(active.req, finishReason, (this.now() - active.arrivedAt) / 1000);
    try {
      active.sink.onEnd(end);
    } catch {
      // a sink that throws in onEnd has nothing left to tell
    }
  }

  private fail(active: Active, error: Error): void {
    if (active.done) return;
    active.done = true;
    active.detach();
    try {
      active.sink.onError(error);
    } catch {
      // as in finish(): nowhere left to report
    }
  }
}
