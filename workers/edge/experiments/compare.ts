// Side-by-side compare: one prompt, several models (adapter versions, aliases, the base), sent together so
// the runner batches them; each answer is reported with its status and latency, failures included.
import type { CompareRequest } from "../../../src/contracts/experiments.ts";
import { AppError } from "../../../src/errors.ts";
import type { Send } from "./routing.ts";

export type ComparePath = "/v1/chat/completions" | "/v1/completions";

/** The OpenAI request each model receives, and which endpoint it goes to. */
export function compareRequest(r: CompareRequest): { path: ComparePath; body: Record<string, unknown> } {
  const sampling = {
    max_tokens: r.max_tokens ?? 64,
    temperature: r.temperature,
    top_p: r.top_p,
    seed: r.seed,
  };
  return r.messages !== undefined
    ? { path: "/v1/chat/completions", body: { messages: r.messages, stream: false, ...sampling } }
    : { path: "/v1/completions", body: { prompt: r.prompt, stream: false, ...sampling } };
}

interface Answer {
  choices?: { message?: { content?: unknown }; text?: unknown }[];
  usage?: Record<string, number>;
  error?: { message?: unknown };
}

function textOf(answer: Answer): string | null {
  const choice = answer.choices?.[0];
  const text = choice?.message?.content ?? choice?.text;
  return typeof text === "string" ? text : null;
}

async function one(send: Send, model: string) {
  const started = Date.now();
  try {
    const { target, res } = await send(model);
    const raw = await res.text();
    let answer: Answer = {};
    try {
      answer = JSON.parse(raw) as Answer;
    } catch {
      answer = { error: { message: raw.slice(0, 500) } };
    }
    return {
      model,
      adapter: target.kind === "adapter" ? `${target.row.name}@${target.row.version}` : null,
      status: res.status,
      latencyMs: Date.now() - started,
      text: res.ok ? textOf(answer) : null,
      usage: res.ok && answer.usage !== undefined ? answer.usage : null,
      error: res.ok ? null : String(answer.error?.message ?? `HTTP ${res.status}`),
    };
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    return {
      model,
      adapter: null,
      status: error.status,
      latencyMs: Date.now() - started,
      text: null,
      usage: null,
      error: error.message,
    };
  }
}

export async function compare(send: Send, models: readonly string[]) {
  return { object: "compare" as const, results: await Promise.all(models.map((m) => one(send, m))) };
}
