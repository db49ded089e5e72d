// The runner's body on its way to the client. Once the first byte has gone out, the status is sent and the
// request cannot move to another runner; if the runner dies then, an SSE client gets one clean error event
// and `[DONE]` (what OpenAI clients parse) instead of a torn connection or half an event. A client that goes
// away cancels this stream, which cancels the upstream request, so the runner stops generating.
import { type AppError, errorEnvelope } from "../../../src/errors.ts";

export interface GuardOptions {
  /** text/event-stream: forward whole events only, and end with an error event on failure. */
  sse: boolean;
  /** Called once, when the body ended, failed or was cancelled by the client. */
  onEnd(outcome: "done" | "failed" | "cancelled"): void;
  /** Shown to the client in the error event. */
  failure: () => AppError;
  /**
   * Replaces a JSON string value (the adapter's content id in `model`) with another (its `name@version`).
   * SSE bodies are rewritten event by event; other bodies (one JSON document) once whole.
   */
  rename?: { from: string; to: string };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function renamer(rename: GuardOptions["rename"]): (bytes: Uint8Array) => Uint8Array {
  if (rename === undefined) return (bytes) => bytes;
  const from = JSON.stringify(rename.from);
  const to = JSON.stringify(rename.to);
  return (bytes) => {
    const text = decoder.decode(bytes);
    return text.includes(from) ? encoder.encode(text.replaceAll(from, to)) : bytes;
  };
}

/** Index just past the last complete SSE event (a blank line ends one: "\n\n" or "\r\n\r\n"), or 0. */
export function eventBoundary(bytes: Uint8Array): number {
  for (let i = bytes.length - 1; i >= 1; i--) {
    if (bytes[i] !== 10) continue;
    if (bytes[i - 1] === 10 || (bytes[i - 1] === 13 && bytes[i - 2] === 10)) return i + 1;
  }
  return 0;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export function errorEvent(error: AppError): Uint8Array {
  return encoder.encode(`data: ${JSON.stringify(errorEnvelope(error))}\n\ndata: [DONE]\n\n`);
}

export function guardStream(
  body: ReadableStream<Uint8Array>,
  options: GuardOptions,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const rename = renamer(options.rename);
  // Without a rename, a plain body passes chunk by chunk; with one, it is held whole (a small JSON answer).
  const holdWhole = !options.sse && options.rename !== undefined;
  let held: Uint8Array = new Uint8Array(0);
  let ended = false;
  const end = (outcome: "done" | "failed" | "cancelled") => {
    if (ended) return;
    ended = true;
    options.onEnd(outcome);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Loops until it enqueues something: a pull that enqueues nothing is not called again.
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch {
          end("failed");
          if (!options.sse) return controller.error(options.failure());
          // A torn event is dropped: half a JSON object would break the client's parser.
          controller.enqueue(errorEvent(options.failure()));
          return controller.close();
        }
        if (chunk.done) {
          if (held.length > 0) controller.enqueue(rename(held));
          end("done");
          return controller.close();
        }
        if (holdWhole) {
          held = concat(held, chunk.value);
          continue;
        }
        if (!options.sse) return controller.enqueue(chunk.value);
        const bytes = concat(held, chunk.value);
        const cut = eventBoundary(bytes);
        held = bytes.slice(cut);
        if (cut > 0) return controller.enqueue(rename(bytes.subarray(0, cut)));
      }
    },
    async cancel(reason) {
      end("cancelled");
      await reader.cancel(reason);
    },
  });
}
