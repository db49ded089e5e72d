// Counts the tokens of an answer on its way to the client. Streams: the edge asks the runner for usage on
// every chunk (stream_options.include_usage with vLLM's continuous_usage_stats), so the count is exact at
// every event, and a client that goes away is billed for the events it was sent, not for what the runner
// had generated. The tap then gives the client the stream it asked for: without include_usage, no usage
// fields and no usage-only final chunk; with include_usage alone, `usage: null` until the final chunk.
// Plain answers pass byte for byte and are read once whole, for their `usage`.
import { eventBoundary } from "../pool/guard-stream.ts";

export interface ClientUsage {
  include: boolean;
  continuous: boolean;
}

export interface Counted {
  promptTokens: number;
  completionTokens: number;
  /** "failed": the upstream broke off (or sent an error event) after the answer had started. */
  outcome: "done" | "failed" | "cancelled";
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
}

function usageOf(value: unknown): Usage | null {
  if (typeof value !== "object" || value === null) return null;
  const u = value as Record<string, unknown>;
  const prompt = u.prompt_tokens;
  const completion = u.completion_tokens;
  if (typeof prompt !== "number" || typeof completion !== "number") return null;
  if (!Number.isInteger(prompt) || !Number.isInteger(completion) || prompt < 0 || completion < 0) return null;
  return { prompt_tokens: prompt, completion_tokens: completion };
}

/** The stream_options the edge sends upstream for a stream, and what the client asked for. */
export function streamUsage(
  body: Record<string, unknown>,
): { body: Record<string, unknown>; client: ClientUsage } | null {
  if (body.stream !== true) return null;
  const asked = (
    typeof body.stream_options === "object" && body.stream_options !== null ? body.stream_options : {}
  ) as Record<string, unknown>;
  const include = asked.include_usage === true;
  return {
    body: { ...body, stream_options: { ...asked, include_usage: true, continuous_usage_stats: true } },
    client: { include, continuous: include && asked.continuous_usage_stats === true },
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The counts of a stream: the final usage chunk when it came, else the latest usage of each choice. */
class StreamCount {
  #final: Usage | null = null;
  readonly #perChoice = new Map<number, Usage>();
  failed = false;

  see(chunk: Record<string, unknown>): void {
    if ("error" in chunk) this.failed = true;
    const usage = usageOf(chunk.usage);
    if (usage === null) return;
    const choices = Array.isArray(chunk.choices) ? (chunk.choices as { index?: unknown }[]) : [];
    if (choices.length === 0) {
      this.#final = usage;
      return;
    }
    const index = typeof choices[0]?.index === "number" ? choices[0].index : 0;
    this.#perChoice.set(index, usage);
  }

  totals(): { promptTokens: number; completionTokens: number } {
    if (this.#final !== null) {
      return { promptTokens: this.#final.prompt_tokens, completionTokens: this.#final.completion_tokens };
    }
    let promptTokens = 0;
    let completionTokens = 0;
    for (const u of this.#perChoice.values()) {
      promptTokens += u.prompt_tokens;
      completionTokens += u.completion_tokens;
    }
    return { promptTokens, completionTokens };
  }
}

/** One SSE event as the client should see it, or null to drop it; `count` sees what the upstream sent. */
function rewriteEvent(event: string, client: ClientUsage, count: StreamCount): string | null {
  if (!event.startsWith("data: ")) return event;
  const payload = event.slice(6).trimEnd();
  if (payload === "[DONE]" || payload.includes("\n")) return event;
  let chunk: unknown;
  try {
    chunk = JSON.parse(payload);
  } catch {
    return event;
  }
  if (typeof chunk !== "object" || chunk === null || Array.isArray(chunk)) return event;
  const obj = chunk as Record<string, unknown>;
  count.see(obj);
  if (!("usage" in obj) || client.continuous) return event;
  const choices = Array.isArray(obj.choices) ? obj.choices : [];
  if (!client.include) {
    if (choices.length === 0) return null;
    delete obj.usage;
  } else if (choices.length > 0) {
    obj.usage = null;
  }
  return `data: ${JSON.stringify(obj)}\n\n`;
}

function splitEvents(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/[\s\S]*?(?:\r?\n\r?\n)/g)) out.push(m[0]);
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export function tapStream(
  body: ReadableStream<Uint8Array>,
  client: ClientUsage,
  onEnd: (counted: Counted) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const count = new StreamCount();
  let held: Uint8Array = new Uint8Array(0);
  let ended = false;
  const end = (outcome: Counted["outcome"]) => {
    if (ended) return;
    ended = true;
    onEnd({ ...count.totals(), outcome: outcome === "done" && count.failed ? "failed" : outcome });
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          end("failed");
          return controller.error(error);
        }
        if (chunk.done) {
          if (held.length > 0) controller.enqueue(held);
          end("done");
          return controller.close();
        }
        const bytes = concat(held, chunk.value);
        const cut = eventBoundary(bytes);
        held = bytes.slice(cut);
        if (cut === 0) continue;
        const events = splitEvents(decoder.decode(bytes.subarray(0, cut)));
        const kept = events.map((e) => rewriteEvent(e, client, count)).filter((e) => e !== null);
        if (kept.length > 0) return controller.enqueue(encoder.encode(kept.join("")));
      }
    },
    async cancel(reason) {
      end("cancelled");
      await reader.cancel(reason);
    },
  });
}

/** A plain (one JSON document) answer: passed through as it comes, its `usage` read at the end. */
export function tapPlain(
  body: ReadableStream<Uint8Array>,
  onEnd: (counted: Counted) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let ended = false;
  const end = (outcome: Counted["outcome"]) => {
    if (ended) return;
    ended = true;
    let usage: Usage | null = null;
    if (outcome === "done") {
      try {
        usage = usageOf(
          (JSON.parse(decoder.decode(parts.reduce(concat, new Uint8Array(0)))) as { usage?: unknown }).usage,
        );
      } catch {
        usage = null;
      }
    }
    onEnd({
      promptTokens: usage?.prompt_tokens ?? 0,
      completionTokens: usage?.completion_tokens ?? 0,
      outcome,
    });
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        end("failed");
        return controller.error(error);
      }
      if (chunk.done) {
        end("done");
        return controller.close();
      }
      parts.push(chunk.value);
      controller.enqueue(chunk.value);
    },
    async cancel(reason) {
      end("cancelled");
      await reader.cancel(reason);
    },
  });
}
