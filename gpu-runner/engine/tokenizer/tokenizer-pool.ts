// Prompt tokenization off the event loop: a small pool of worker threads (tokenizer-worker.ts), each with its
// own copy of the tokenizer, renders chat templates and encodes prompts, so /health and every other request's
// tokens keep flowing while one huge prompt is tokenized. A job gets a deadline from the moment a worker
// starts it; past it the worker is terminated (the only way to stop a synchronous encode) and replaced, and
// the job is refused with 413 naming the limit. A worker that runs out of its memory limit is replaced the
// same way. Prompts small enough to cost less than a worker round trip are tokenized in place.
// It never checks what the ids mean (context length, vocabulary): the caller does.
import { Worker } from "node:worker_threads";
import { AppError, type ErrorCode } from "../../../src/errors.ts";
import type { ChatMessage, RenderOptions } from "./chat-template.ts";
import type { RunnerTokenizer } from "./types.ts";

/** What a worker is asked: a chat rendered and encoded, or a text encoded. */
export type PoolJob = (
  | { op: "chat"; messages: ChatMessage[]; options: RenderOptions; addSpecialTokens: boolean }
  | { op: "encode"; text: string; addSpecialTokens: boolean }
) & {
  /** Past this many ids only their count comes back (JobOptions.tooLong). */
  maxIds: number | null;
};

/** What a worker answers. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | { type: "done"; id: number; ids: Uint32Array }
  | { type: "count"; id: number; count: number }
  | {
      type: "refused";
      id: number;
      error: { code: ErrorCode; message: string; param: string | null; details: string[] };
    }
  | { type: "fault"; id: number; message: string };

export interface JobOptions {
  /** The request field the prompt came from (`messages`, `prompt`): refusals name it. */
  param: string;
  signal?: AbortSignal;
  /**
   * A prompt of more than `maxIds` ids is refused with `refuse(count)` without its ids ever being handed
   * over: copying millions of ids into an array would hold the event loop for a noticeable time.
   */
  tooLong?: { maxIds: number; refuse(count: number): AppError };
}

/** Tokenizes prompts without blocking the caller's thread on a large one. */
export interface PromptTokenizer {
  /** The chat template's rendering of `messages`, encoded (special tokens off unless asked: the template has them). */
  encodeChat(
    messages: ChatMessage[],
    options: RenderOptions & { addSpecialTokens?: boolean },
    job: JobOptions,
  ): Promise<number[]>;
  encode(text: string, options: { addSpecialTokens?: boolean }, job: JobOptions): Promise<number[]>;
  /** Terminates the workers; jobs still waiting are refused. */
  close(): Promise<void>;
}

export interface TokenizerPoolOptions {
  /** The model directory each worker loads tokenizer.json (and the chat template) from. */
  modelDir: string;
  /** The same tokenizer on this thread, for prompts below the in-place bound. */
  local: RunnerTokenizer;
  /** Worker threads (>= 1). */
  size: number;
  /** Longest one job may run on a worker, in milliseconds. */
  deadlineMs: number;
  /** How the deadline is set, for refusals (e.g. `--tokenize-deadline-ms`). */
  deadlineSetting: string;
  /** Heap limit of each worker in MiB: a prompt that needs more is refused, the process never runs out. */
  workerHeapMb?: number;
}

/**
 * Below both of these a prompt is tokenized in place: about a millisecond of work, less than handing it to a
 * worker, and it keeps small requests from ever queueing behind large ones in the pool.
 */
export const IN_PLACE_MAX_CHARS = 4096;
export const IN_PLACE_MAX_MESSAGES = 32;

export const DEFAULT_WORKER_HEAP_MB = 2048;

interface Pending {
  id: number;
  job: PoolJob;
  param: string;
  tooLong: JobOptions["tooLong"];
  signal: AbortSignal | undefined;
  resolve(ids: number[]): void;
  reject(error: Error): void;
  onAbort: () => void;
}

interface Lane {
  worker: Worker;
  ready: boolean;
  /** The job it runs now, with the timer that ends it. */
  running: { pending: Pending; timer: NodeJS.Timeout } | null;
}

function chatChars(messages: ChatMessage[]): number {
  let total = 0;
  for (const m of messages) total += m.content.length;
  return total;
}

/** A plain loop: several times faster than Array.from or spreading for millions of ids. */
function toArray(ids: Uint32Array): number[] {
  const out: number[] = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = ids[i] as number;
  return out;
}

function checked(ids: number[], job: JobOptions): number[] {
  if (job.tooLong !== undefined && ids.length > job.tooLong.maxIds) throw job.tooLong.refuse(ids.length);
  return ids;
}

function cancelled(): AppError {
  // the client has gone, so this answer is never read; an AppError keeps it out of the fault log
  return new AppError("unavailable", "the request was cancelled before its prompt was tokenized");
}

export function createTokenizerPool(options: TokenizerPoolOptions): PromptTokenizer {
  if (!Number.isSafeInteger(options.size) || options.size < 1)
    throw new RangeError(`tokenizer pool size must be an integer >= 1; got ${options.size}`);
  if (!Number.isSafeInteger(options.deadlineMs) || options.deadlineMs < 1)
    throw new RangeError(`tokenizer deadline must be an integer >= 1 ms; got ${options.deadlineMs}`);
  const heapMb = options.workerHeapMb ?? DEFAULT_WORKER_HEAP_MB;
  const lanes: Lane[] = [];
  const queue: Pending[] = [];
  let nextId = 1;
  let closed = false;
  /** Consecutive workers that failed to load the tokenizer: past a few, jobs fail instead of respawning. */
  let startFailures = 0;

  const spawn = (): Lane => {
    const worker = new Worker(new URL("./tokenizer-worker.ts", import.meta.url), {
      workerData: { modelDir: options.modelDir },
      resourceLimits: { maxOldGenerationSizeMb: heapMb },
    });
    const lane: Lane = { worker, ready: false, running: null };
    worker.on("message", (reply: WorkerReply) => onReply(lane, reply));
    worker.on("error", (error: Error & { code?: string }) => onExit(lane, error));
    worker.on("exit", () => onExit(lane, null));
    lanes.push(lane);
    return lane;
  };

  const retire = (lane: Lane): void => {
    const at = lanes.indexOf(lane);
    if (at === -1) return;
    lanes.splice(at, 1);
    if (lane.running !== null) clearTimeout(lane.running.timer);
    lane.running = null;
    void lane.worker.terminate();
  };

  const settle = (pending: Pending): void => {
    pending.signal?.removeEventListener("abort", pending.onAbort);
  };

  const refill = (): void => {
    if (closed) return;
    while (lanes.length < options.size && startFailures < 3) spawn();
    if (lanes.length === 0) {
      for (const pending of queue.splice(0)) {
        settle(pending);
        pending.reject(
          new AppError(
            "internal_error",
            "the tokenizer worker threads failed to start; see the runner's log",
          ),
        );
      }
      return;
    }
    for (const lane of lanes) {
      if (!lane.ready || lane.running !== null) continue;
      const pending = queue.shift();
      if (pending === undefined) return;
      const timer = setTimeout(() => {
        retire(lane);
        settle(pending);
        pending.reject(
          new AppError(
            "payload_too_large",
            `${pending.param}: tokenizing took longer than ${options.deadlineMs} ms (${options.deadlineSetting}); send a shorter prompt`,
            { param: pending.param },
          ),
        );
        refill();
      }, options.deadlineMs);
      lane.running = { pending, timer };
      lane.worker.postMessage({ id: pending.id, job: pending.job });
    }
  };

  const onReply = (lane: Lane, reply: WorkerReply): void => {
    if (reply.type === "ready") {
      lane.ready = true;
      startFailures = 0;
      refill();
      return;
    }
    if (reply.type === "failed") {
      console.error("runner: a tokenizer worker failed to load the tokenizer:", reply.message);
      startFailures++;
      retire(lane);
      refill();
      return;
    }
    const running = lane.running;
    if (running === null || running.pending.id !== reply.id) return;
    clearTimeout(running.timer);
    lane.running = null;
    const { pending } = running;
    settle(pending);
    if (reply.type === "done") pending.resolve(toArray(reply.ids));
    else if (reply.type === "count")
      pending.reject(
        pending.tooLong?.refuse(reply.count) ?? new AppError("internal_error", "no ids returned"),
      );
    else if (reply.type === "refused") {
      const { code, message, param, details } = reply.error;
      pending.reject(new AppError(code, message, { param, details }));
    } else {
      console.error("runner: tokenizing failed:", reply.message);
      pending.reject(new AppError("internal_error", "tokenizing failed; see the runner's log"));
    }
    refill();
  };

  const onExit = (lane: Lane, error: (Error & { code?: string }) | null): void => {
    if (!lanes.includes(lane)) return;
    const running = lane.running;
    retire(lane);
    if (running !== null) {
      const { pending } = running;
      settle(pending);
      if (error?.code === "ERR_WORKER_OUT_OF_MEMORY") {
        pending.reject(
          new AppError(
            "payload_too_large",
            `${pending.param}: tokenizing needed more than a tokenizer worker's ${heapMb} MiB of memory; send a shorter prompt`,
            { param: pending.param },
          ),
        );
      } else {
        console.error("runner: a tokenizer worker stopped:", error ?? "exited");
        pending.reject(new AppError("internal_error", "tokenizing failed; see the runner's log"));
      }
    } else if (error !== null && !closed) console.error("runner: a tokenizer worker stopped:", error);
    refill();
  };

  const submit = (job: PoolJob, { param, signal, tooLong }: JobOptions): Promise<number[]> =>
    new Promise<number[]>((resolve, reject) => {
      if (closed) {
        reject(new AppError("unavailable", "the runner is shutting down"));
        return;
      }
      if (signal?.aborted) {
        reject(cancelled());
        return;
      }
      const pending: Pending = {
        id: nextId++,
        job,
        param,
        tooLong,
        signal,
        resolve,
        reject,
        onAbort: () => {
          const queued = queue.indexOf(pending);
          if (queued !== -1) queue.splice(queued, 1);
          // a job on a worker is stopped with it: its CPU is freed now, not at the deadline
          const lane = lanes.find((l) => l.running?.pending === pending);
          if (lane !== undefined) retire(lane);
          reject(cancelled());
          refill();
        },
      };
      signal?.addEventListener("abort", pending.onAbort, { once: true });
      queue.push(pending);
      refill();
    });

  startFailures = 0;
  refill();
  const { local } = options;
  return {
    async encodeChat(messages, renderOptions, job) {
      const { addSpecialTokens = false, ...render } = renderOptions;
      if (messages.length <= IN_PLACE_MAX_MESSAGES && chatChars(messages) <= IN_PLACE_MAX_CHARS) {
        return checked(local.encode(local.renderChat(messages, render), { addSpecialTokens }), job);
      }
      const maxIds = job.tooLong?.maxIds ?? null;
      return await submit({ op: "chat", messages, options: render, addSpecialTokens, maxIds }, job);
    },
    async encode(text, encodeOptions, job) {
      const addSpecialTokens = encodeOptions.addSpecialTokens ?? true;
      if (text.length <= IN_PLACE_MAX_CHARS) return checked(local.encode(text, { addSpecialTokens }), job);
      const maxIds = job.tooLong?.maxIds ?? null;
      return await submit({ op: "encode", text, addSpecialTokens, maxIds }, job);
    },
    async close() {
      closed = true;
      for (const pending of queue.splice(0)) {
        settle(pending);
        pending.reject(new AppError("unavailable", "the runner is shutting down"));
      }
      const stopping = lanes.splice(0).map((lane) => {
        if (lane.running !== null) {
          clearTimeout(lane.running.timer);
          settle(lane.running.pending);
          lane.running.pending.reject(new AppError("unavailable", "the runner is shutting down"));
        }
        return lane.worker.terminate();
      });
      await Promise.all(stopping);
    },
  };
}

/** In-place tokenization for a tokenizer that has no text (token-ids mode): every call refuses as it does. */
export function inPlacePromptTokenizer(local: RunnerTokenizer): PromptTokenizer {
  return {
    encodeChat: async (messages, { addSpecialTokens = false, ...render }, job) =>
      checked(local.encode(local.renderChat(messages, render), { addSpecialTokens }), job),
    encode: async (text, { addSpecialTokens = true }, job) =>
      checked(local.encode(text, { addSpecialTokens }), job),
    close: async () => {},
  };
}
