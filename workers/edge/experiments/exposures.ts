// Exposure recording off the hot path. A response's exposure is complete only when its body has streamed
// out (latency, tokens), so the body passes through an observer; finished exposures wait in an isolate-wide
// buffer for a short window and go to D1 in one batch with whatever other requests finished meanwhile.
import { sha256Hex } from "../../../src/crypto.ts";
import { ExperimentStore } from "./experiment-store.ts";
import { evaluateGuardrails, type PendingExposure } from "./guardrails.ts";

/** How long a finished exposure waits for others to join its batch. */
const BATCH_WINDOW_MS = 20;
/** Usage sits in the last JSON object or SSE event; the tail is all the observer keeps. */
const TAIL_CHARS = 4096;
const RUN_AHEAD_BYTES = 256 * 1024;

const buffer: PendingExposure[] = [];

export interface Observed {
  status: number;
  error: boolean;
  promptTokens: number | null;
  completionTokens: number | null;
}

/** The last `"usage": {...}` in a body tail: a JSON completion or the final SSE usage chunk. */
export function usageIn(tail: string): { promptTokens: number | null; completionTokens: number | null } {
  const matches = [...tail.matchAll(/"usage"\s*:\s*(\{[^{}]*\})/g)];
  const last = matches[matches.length - 1]?.[1];
  if (last === undefined) return { promptTokens: null, completionTokens: null };
  try {
    const usage = JSON.parse(last) as { prompt_tokens?: unknown; completion_tokens?: unknown };
    const int = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : null);
    return { promptTokens: int(usage.prompt_tokens), completionTokens: int(usage.completion_tokens) };
  } catch {
    return { promptTokens: null, completionTokens: null };
  }
}

/**
 * Passes `res` through unchanged and calls `done` once its body ends, errors or is cancelled by the client.
 * Headers are copied so callers may add their own.
 */
export function observe(res: Response, done: (observed: Observed) => void): Response {
  const base = { status: res.status, error: res.status >= 500 };
  if (res.body === null) {
    done({ ...base, promptTokens: null, completionTokens: null });
    return new Response(null, res);
  }
  const decoder = new TextDecoder();
  let tail = "";
  let finished = false;
  const finish = (failed: boolean) => {
    if (finished) return;
    finished = true;
    done({ ...base, error: base.error || failed, ...usageIn(tail) });
  };
  const body = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>(
      {
        transform(chunk, controller) {
          tail = (tail + decoder.decode(chunk, { stream: true })).slice(-TAIL_CHARS);
          controller.enqueue(chunk);
        },
        flush: () => finish(false),
        cancel: () => finish(true),
      },
      undefined,
      // Room to run ahead of the client: an answer up to this size is observed to its end even while the
      // client reads slowly (or not yet), so the exposure measures the runner, not the client's network.
      new ByteLengthQueuingStrategy({ highWaterMark: RUN_AHEAD_BYTES }),
    ),
  );
  return new Response(body, { status: res.status, headers: new Headers(res.headers) });
}

/** Reads a shadow's answer to the end (nobody else will) and reports what it saw. */
export async function drain(res: Response): Promise<Observed> {
  let text = "";
  let failed = false;
  try {
    text = await res.text();
  } catch {
    failed = true;
  }
  return { status: res.status, error: failed || res.status >= 500, ...usageIn(text.slice(-TAIL_CHARS)) };
}

/** Subjects are stored hashed (with the route's salt), so results can count them without keeping them. */
export async function subjectHash(salt: string, subject: string | null): Promise<string | null> {
  return subject === null ? null : (await sha256Hex(`${salt}:${subject}`)).slice(0, 32);
}

/**
 * Queues an exposure and flushes the buffer after a short window. Each request flushes with its own I/O
 * (workerd forbids sharing I/O across requests); a request that finds the buffer already taken writes nothing.
 */
export async function recordExposure(db: D1Database, pending: PendingExposure): Promise<void> {
  buffer.push(pending);
  await scheduler.wait(BATCH_WINDOW_MS);
  const batch = buffer.splice(0);
  if (batch.length === 0) return;
  try {
    await new ExperimentStore(db).recordExposures(batch.map((p) => p.exposure));
    await evaluateGuardrails(db, batch);
  } catch (error) {
    console.error(`exposures: lost a batch of ${batch.length}:`, error);
  }
}
