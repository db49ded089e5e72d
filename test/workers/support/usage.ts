// A fake runner that answers like gpu-runner/serving/http/chat.ts, usage included: a plain completion with
// `usage`, or an SSE stream that honours stream_options (include_usage, continuous_usage_stats) the way the
// runner and vLLM do. Plus helpers that read usage back through GET /admin/usage.
import type { UsageReport } from "../../../src/contracts/usage.ts";
import { call, json, runner } from "./edge.ts";

export interface Script {
  promptTokens: number;
  /** One string per delta; each delta is one token. */
  pieces: string[];
  /** When set, the stream stops after this many deltas and waits until the edge cancels it. */
  holdAfter?: number;
}

const encoder = new TextEncoder();

/** What the fake runner saw cancelled (streams the edge gave up on). */
export const cancelled: { count: number } = { count: 0 };

export function scriptedRunner(script: Script | ((model: string) => Script)): void {
  runner.calls = [];
  runner.handler = async (request) => {
    const body = (await request.clone().json()) as {
      model: string;
      stream?: boolean;
      stream_options?: { include_usage?: boolean; continuous_usage_stats?: boolean };
    };
    const s = typeof script === "function" ? script(body.model) : script;
    const completion = s.pieces.length;
    const usage = (generated: number) => ({
      prompt_tokens: s.promptTokens,
      completion_tokens: generated,
      total_tokens: s.promptTokens + generated,
    });
    const head = { id: "chatcmpl-1", created: 1, model: body.model, object: "chat.completion.chunk" };
    if (body.stream !== true) {
      return Response.json({
        id: "chatcmpl-1",
        object: "chat.completion",
        created: 1,
        model: body.model,
        choices: [
          { index: 0, message: { role: "assistant", content: s.pieces.join("") }, finish_reason: "stop" },
        ],
        usage: usage(completion),
      });
    }
    const include = body.stream_options?.include_usage === true;
    const continuous = include && body.stream_options?.continuous_usage_stats === true;
    let generated = 0;
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ ...head, choices, ...(include ? { usage: continuous ? usage(generated) : null } : {}), ...extra })}\n\n`;
    const events: string[] = [
      chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]),
    ];
    for (const [i, piece] of s.pieces.entries()) {
      generated = i + 1;
      const last = i === s.pieces.length - 1;
      events.push(chunk([{ index: 0, delta: { content: piece }, finish_reason: last ? "stop" : null }]));
    }
    if (include) events.push(chunk([], { usage: usage(completion) }));
    events.push("data: [DONE]\n\n");
    const upTo = s.holdAfter === undefined ? events.length : s.holdAfter + 1;
    let i = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (i < upTo) {
          controller.enqueue(encoder.encode(events[i++] as string));
          return;
        }
        if (s.holdAfter === undefined) return controller.close();
        // Held open, like a runner still generating, until the edge cancels.
        await new Promise(() => {});
      },
      cancel() {
        cancelled.count++;
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  };
}

/** Reads an SSE body into its JSON events ([DONE] left out). */
export async function sseEvents(res: Response): Promise<Record<string, unknown>[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((e) => e.startsWith("data: ") && e !== "data: [DONE]")
    .map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
}

export async function usage(token: string, query: string): Promise<UsageReport> {
  return await json<UsageReport>(await call("GET", `/admin/usage?${query}`, { token }), 200);
}
