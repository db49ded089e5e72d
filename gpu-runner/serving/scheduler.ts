// Continuous batching over an Engine. Between engine steps requests join (prefill) and leave (finished,
// cancelled); every step's rows may use different adapter slots. Prefill of newly admitted requests is
// interleaved with decode steps of the running ones, so a long prompt delays running rows by one step,
// not by its whole generation. A request that asks for prompt logprobs is scored first (see Active.scoring).
// A request whose adapter is in no slot claims one when it joins the batch (the adapter cache copies it in
// from host memory); while every slot has running rows it waits, up to slotWaitMs, and the requests behind
// it whose adapters are resident join and decode meanwhile (docs/architecture.md, "Adapter tiers").
// Waiting requests join round-robin across tenants, the least recently served tenant first; a tenant holds at
// most maxRunningPerTenant rows and maxRunningPerTenant + maxQueuePerTenant requests in all (beyond it
// queue_full, while other tenants are still admitted), so one tenant's flood leaves rows and queue places free
// for the others. Requests that name no tenant are one group with the same bounds
// (docs/architecture.md, "Fair tenants and bounded work").
import { setImmediate as nextTick, setTimeout as sleep } from "node:timers/promises";
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

/**
 * A request's hold on an adapter slot, resolved when the row joins the batch. Both calls come from the
 * scheduler between engine steps, so the claim may write the slot.
 */
export interface SlotClaim {
  /** The slot the row runs in (its adapter written there first when needed), or null: wait for one. */
  claim(): number | null;
  /** The row left the batch: once no row uses the slot, it may be given to another adapter. */
  leave(): void;
}

export interface GenerationRequest {
  promptIds: number[];
  /**
   * A fixed engine slot (0 = base model; the caller holds it for the request's lifetime), or a claim that
   * the scheduler resolves when the row joins the batch.
   */
  slot: number | SlotClaim;
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
  /**
   * The tenant the edge says the request is for (only from an authenticated caller); null or absent: the
   * runner's own callers, one group that takes its turn with the tenants under the same bounds.
   */
  tenant?: string | null;
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
  /**
   * Most prompt tokens prefilled in one step, counted as the engine pads them (rows × longest chunk); longer
   * prompts are prefilled in chunks. Default DEFAULT_PREFILL_TOKENS.
   */
  prefillTokens?: number;
  metrics?: RunnerMetrics;
  observer?: SchedulerObserver;
  /**
   * Longest a request waits for an adapter slot (every slot holding running rows) before it is refused with
   * 503 unavailable; default DEFAULT_SLOT_WAIT_MS.
   */
  slotWaitMs?: number;
  /** Counts slot waits and their timeouts. */
  slotMetrics?: { slotWaits: { inc(): void }; slotWaitTimeouts: { inc(): void } };
  /** Monotonic clock in milliseconds for the observer's latencies; performance.now by default. */
  now?: () => number;
  /** Most running rows of one tenant (GenerationRequest.tenant, or the unnamed group); default maxBatch. */
  maxRunningPerTenant?: number;
  /**
   * A tenant's share of the queue: it holds at most maxRunningPerTenant + maxQueuePerTenant requests
   * (running and waiting), beyond which submit() refuses it with queue_full; default maxQueue.
   */
  maxQueuePerTenant?: number;
}

interface Active {
  req: GenerationRequest;
  sink: GenerationSink;
  /** The engine slot its sequences use, once it has joined the batch. */
  slot: number | null;
  /** The claim that gave it that slot, to leave when its row leaves the batch. */
  claimed: SlotClaim | null;
  /** It has waited for a slot at least once (counted once). */
  blocked: boolean;
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

export const DEFAULT_PREFILL_TOKENS = 512;

/** Long enough for the rows in the slots to finish a typical generation, short of clients' own timeouts. */
export const DEFAULT_SLOT_WAIT_MS = 60_000;

/** The fairness group of a request: its tenant, or "" for the runner's own callers (no tenant named). */
function groupOf(req: GenerationRequest): string {
  return req.tenant == null ? "" : `t:${req.tenant}`;
}

/** The group as a refusal names it. */
function groupName(group: string): string {
  return group === "" ? "requests without a tenant" : `tenant ${JSON.stringify(group.slice(2))}`;
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
  private readonly slotWaitMs: number;
  private readonly slotMetrics: SchedulerOptions["slotMetrics"];
  private readonly maxRunningPerTenant: number;
  private readonly maxQueuePerTenant: number;
  /** Admissions so far, and the count at each tenant's latest one: the least recently served goes first. */
  private admissions = 0;
  private readonly servedAt = new Map<string, number>();
  private readonly waiting: Active[] = [];
  private running: Active[] = [];
  private looping = false;
  private closed = false;
  private stepping = false;
  /** Work that must not overlap an engine step (slot writes), run when the step in flight returns. */
  private afterStep: (() => void)[] = [];

  constructor(options: SchedulerOptions) {
    const perTenant = options.maxRunningPerTenant ?? options.maxBatch;
    if (!Number.isSafeInteger(perTenant) || perTenant < 1) {
      throw new RangeError(`scheduler maxRunningPerTenant must be an integer >= 1; got ${perTenant}`);
    }
    this.maxRunningPerTenant = perTenant;
    const queuePerTenant = options.maxQueuePerTenant ?? options.maxQueue;
    if (!Number.isSafeInteger(queuePerTenant) || queuePerTenant < 0) {
      throw new RangeError(`scheduler maxQueuePerTenant must be an integer >= 0; got ${queuePerTenant}`);
    }
    this.maxQueuePerTenant = queuePerTenant;
    const prefillTokens = options.prefillTokens ?? DEFAULT_PREFILL_TOKENS;
    if (!Number.isSafeInteger(prefillTokens) || prefillTokens < 1) {
      throw new RangeError(`scheduler prefillTokens must be an integer >= 1; got ${prefillTokens}`);
    }
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
    this.prefillTokens = options.prefillTokens ?? DEFAULT_PREFILL_TOKENS;
    this.metrics = options.metrics;
    this.observer = options.observer;
    this.now = options.now ?? (() => performance.now());
    this.slotWaitMs = options.slotWaitMs ?? DEFAULT_SLOT_WAIT_MS;
    this.slotMetrics = options.slotMetrics;
  }

  /** Runs `fn` now when no engine step is in flight, else as soon as the current one has returned. */
  betweenSteps(fn: () => void): void {
    if (this.stepping) this.afterStep.push(fn);
    else fn();
  }

  /**
   * The most requests one tenant may hold (its rows and its share of the queue, within the batch and the queue
   * together): a request needing more never runs.
   */
  get capacity(): number {
    return Math.min(this.maxBatch + this.maxQueue, this.maxRunningPerTenant + this.maxQueuePerTenant);
  }

  /** The flags that set `capacity`, for refusals that name them. */
  get capacityBound(): string {
    return this.maxRunningPerTenant + this.maxQueuePerTenant < this.maxBatch + this.maxQueue
      ? "one tenant's share: its --max-batch-per-tenant and --max-queue-per-tenant together"
      : "its --max-batch and --max-queue together";
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

  /**
   * Queues a request; throws queue_full (429) when the batch and the queue are both full, or when the request's
   * tenant already holds its share (its rows and its part of the queue), so other tenants are still admitted.
   */
  submit(req: GenerationRequest, sink: GenerationSink): void {
    if (this.closed) throw new AppError("unavailable", "the runner is shutting down");
    if (this.running.length + this.waiting.length >= this.maxBatch + this.maxQueue) {
      throw new AppError(
        "queue_full",
        `queue is full: ${this.waiting.length} waiting (max ${this.maxQueue}) and ${this.running.length} running (max ${this.maxBatch}); retry later`,
      );
    }
    const group = groupOf(req);
    const share = this.maxRunningPerTenant + this.maxQueuePerTenant;
    let held = 0;
    for (const a of this.waiting) if (groupOf(a.req) === group) held++;
    for (const a of this.running) if (!a.done && groupOf(a.req) === group) held++;
    if (held >= share) {
      throw new AppError(
        "queue_full",
        `${groupName(group)}: must hold at most ${share} requests on this runner (${this.maxRunningPerTenant} running + ${this.maxQueuePerTenant} waiting, its share of the queue); holds ${held}; retry later`,
      );
    }
    const active: Active = {
      req,
      sink,
      slot: null,
      claimed: null,
      blocked: false,
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
      let prefill = this.prefilling();
      if (prefill.length > 0) await this.prefillStep(prefill);
      this.reap();
      // a request that arrived during that step joins now and is prefilled before the decode step: its first
      // token waits for the step in flight and its own, not for a decode step of every running row too
      if (this.admit() > 0) {
        const joined = this.prefilling();
        if (joined.length > 0) await this.prefillStep(joined);
        prefill = prefill.concat(joined);
        this.reap();
      }
      const decode = this.running.filter((a) => !a.done && (a.pending !== null || a.scoring !== null));
      if (decode.length > 0) await this.decodeStep(decode);
      // let new requests and aborts arrive between steps; with nothing to step (rows waiting for a slot
      // that is being freed elsewhere) wait a little instead of spinning
      if (prefill.length === 0 && decode.length === 0) await sleep(1);
      else await nextTick();
    }
  }

  /** Running rows whose prompt is not yet all in the KV cache. */
  private prefilling(): Active[] {
    return this.running.filter((a) => !a.done && a.scoring === null && a.fed < a.req.promptIds.length);
  }

  /**
   * Waiting requests in the order they may join: round-robin across tenants, the tenant served least recently
   * first (one never served before any other), each tenant's own in arrival order.
   */
  private fairOrder(): Active[] {
    const byTenant = new Map<string, Active[]>();
    for (const active of this.waiting) {
      const key = groupOf(active.req);
      const list = byTenant.get(key);
      if (list === undefined) byTenant.set(key, [active]);
      else list.push(active);
    }
    if (byTenant.size === 1) return this.waiting.slice();
    const groups = [...byTenant.entries()]
      .sort(([a], [b]) => (this.servedAt.get(a) ?? -1) - (this.servedAt.get(b) ?? -1))
      .map(([, list]) => list);
    const order: Active[] = [];
    for (let round = 0; order.length < this.waiting.length; round++) {
      for (const list of groups) {
        const next = list[round];
        if (next !== undefined) order.push(next);
      }
    }
    return order;
  }

  /**
   * Moves waiting requests into the batch in fair order (fairOrder). A tenant (or the unnamed group) at its cap
   * of running rows waits; one whose adapter gets no slot stays waiting and the next ones are tried, so rows whose adapters
   * are resident keep joining while it waits (the adapter cache drains a slot for it meanwhile); past
   * slotWaitMs it is refused.
   */
  private admit(): number {
    let admitted = 0;
    const now = this.now();
    for (let i = 0; i < this.waiting.length; ) {
      const active = this.waiting[i] as Active;
      if (active.blocked && now - active.arrivedAt > this.slotWaitMs) {
        this.waiting.splice(i, 1);
        this.slotMetrics?.slotWaitTimeouts.inc();
        this.fail(
          active,
          new AppError(
            "unavailable",
            `no adapter slot freed within ${this.slotWaitMs} ms: all ${this.engine.maxSlots} slots hold adapters with running requests; retry later or raise --max-loras`,
          ),
        );
        continue;
      }
      i++;
    }
    if (this.waiting.length === 0 || this.running.length >= this.maxBatch) return 0;
    this.forgetIdleTenants();
    const rowsOf = new Map<string, number>();
    for (const a of this.running) rowsOf.set(groupOf(a.req), (rowsOf.get(groupOf(a.req)) ?? 0) + 1);
    for (const active of this.fairOrder()) {
      if (this.running.length >= this.maxBatch) break;
      const group = groupOf(active.req);
      const rows = rowsOf.get(group) ?? 0;
      if (rows >= this.maxRunningPerTenant) continue;
      let slot: number | null;
      try {
        slot = typeof active.req.slot === "number" ? active.req.slot : active.req.slot.claim();
      } catch (error) {
        this.waiting.splice(this.waiting.indexOf(active), 1);
        this.fail(active, error as Error);
        continue;
      }
      if (slot === null) {
        if (!active.blocked) this.slotMetrics?.slotWaits.inc();
        active.blocked = true;
        continue;
      }
      this.waiting.splice(this.waiting.indexOf(active), 1);
      rowsOf.set(group, rows + 1);
      this.servedAt.set(group, this.admissions++);
      active.slot = slot;
      if (typeof active.req.slot !== "number") active.claimed = active.req.slot;
      active.seq = this.engine.createSequence(slot);
      const { promptLogprobs, promptIds } = active.req;
      if (promptLogprobs != null) {
        active.promptLogprobs = [null];
        if (promptIds.length > 1) active.scoring = { fed: 0 };
      }
      this.running.push(active);
      admitted++;
      this.metrics?.promptTokens.inc({ adapter_id: active.req.adapter }, active.req.promptIds.length);
      this.observer?.admitted(active.req);
    }
    return admitted;
  }

  /**
   * Keeps the record of when each tenant was served bounded by the requests held: a tenant with nothing
   * waiting or running is forgotten, and counts as never served (first in line) when it comes back.
   */
  private forgetIdleTenants(): void {
    if (this.servedAt.size <= this.maxBatch + this.maxQueue) return;
    const held = new Set([...this.waiting, ...this.running].map((a) => groupOf(a.req)));
    for (const group of this.servedAt.keys()) if (!held.has(group)) this.servedAt.delete(group);
  }

  /** Drops finished and cancelled rows and frees their sequences (no step is in flight here). */
  private reap(): void {
    const keep: Active[] = [];
    for (const a of this.running) {
      if (a.cancelled && !a.done) this.finish(a, "cancelled");
      if (a.done) this.releaseRow(a);
      else keep.push(a);
    }
    this.running = keep;
  }

  /**
   * Prefills a chunk of some prompts in one step. Tenants compete for the step by their running rows: only
   * the rows of tenants holding at most twice the fewest rows of any tenant with a prompt to prefill join it,
   * so a quiet tenant's short prompt is not stepped beside a flooding tenant's new rows (a step costs by its
   * rows times its longest chunk: the engine pads every row to that), and tenants with as many rows share one
   * step. Within it, fewest prompt tokens left first, and the step's padded size stays within prefillTokens.
   */
  private async prefillStep(rows: Active[]): Promise<void> {
    const rowsOf = new Map<string, number>();
    for (const a of this.running) {
      if (!a.done) rowsOf.set(groupOf(a.req), (rowsOf.get(groupOf(a.req)) ?? 0) + 1);
    }
    const load = (a: Active) => rowsOf.get(groupOf(a.req)) ?? 0;
    const fewest = Math.min(...rows.map(load));
    const remaining = (a: Active) => a.req.promptIds.length - a.fed;
    const ordered = rows.filter((a) => load(a) <= 2 * fewest).sort((a, b) => remaining(a) - remaining(b));
    const chosen: { active: Active; tokens: number[] }[] = [];
    let longest = 0;
    for (const active of ordered) {
      // the first row always gets a chunk (of at most prefillTokens), so every prompt progresses
      const room =
        chosen.length === 0 ? this.prefillTokens : Math.floor(this.prefillTokens / (chosen.length + 1));
      const chunk = Math.min(remaining(active), room);
      if (chosen.length > 0 && Math.max(longest, chunk) * (chosen.length + 1) > this.prefillTokens) break;
      longest = Math.max(longest, chunk);
      chosen.push({ active, tokens: active.req.promptIds.slice(active.fed, active.fed + chunk) });
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
    const { promptIds, promptLogprobs } = active.req;
    const next = promptIds[scoring.fed + 1] as number;
    active.promptLogprobs?.push(tokenLogprobs(logits, next, promptLogprobs ?? 0));
    scoring.fed++;
    if (scoring.fed < promptIds.length - 1) return;
    // no step is in flight here: the one that produced these logits has returned
    if (active.seq !== null) this.engine.release(active.seq);
    active.seq = this.engine.createSequence(active.slot as number);
    active.scoring = null;
  }

  /** Runs one engine step; on failure every row in it fails and null is returned. */
  private async step(actives: Active[], rows: StepRow[]): Promise<Float32Array[] | null> {
    this.metrics?.batchSize.observe(rows.length);
    this.stepping = true;
    try {
      return await this.engine.step(rows);
    } catch (error) {
      // the step has ended (rejected): its rows may be freed now
      this.stepping = false;
      for (const a of actives) this.fail(a, error as Error);
      return null;
    } finally {
      this.stepping = false;
      const deferred = this.afterStep;
      this.afterStep = [];
      for (const fn of deferred) {
        try {
          fn();
        } catch (error) {
          console.error("work deferred past an engine step failed:", error);
        }
      }
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

  /**
   * Frees a finished row's sequence and slot claim. Only between steps: a row cancelled during a step is
   * freed by reap() after it, as its sequence may be inside the step.
   */
  private releaseRow(active: Active): void {
    if (active.seq !== null) this.engine.release(active.seq);
    active.seq = null;
    active.claimed?.leave();
    active.claimed = null;
  }

  private finish(active: Active, finishReason: FinishReason, stopToken?: SampledToken): void {
    if (active.done) return;
    active.done = true;
    active.detach();
    // before the sink hears of the end: a client that unloads the adapter at once finds its slot unused
    if (!this.stepping) this.releaseRow(active);
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
    if (!this.stepping) this.releaseRow(active);
    try {
      active.sink.onError(error);
    } catch {
      // as in finish(): nowhere left to report
    }
  }
}
