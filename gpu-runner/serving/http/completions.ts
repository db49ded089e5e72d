// POST /v1/completions: one choice per prompt (text, list of texts, token ids, lists of token ids).
import type { Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { type CompletionRequest, CompletionRequestSchema } from "../../../src/contracts/openai.ts";
import { validate } from "../../../src/http/validate.ts";
import type { RunnerDeps } from "./deps.ts";
import type { GenerationEvent } from "./generate.ts";
import {
  collect,
  completionId,
  completionLogprobs,
  idsOf,
  logprobTokens,
  mergeIndexed,
  nowSeconds,
  promptLogprobsOf,
  type TokenIdFields,
  tokenIdFields,
  usageOf,
} from "./openai-format.ts";
import { completionPrompts, startAll, tenantOf } from "./requests.ts";
import { streamErrorWriter } from "./sse.ts";

// OpenAI's documented default for the legacy endpoint
const DEFAULT_MAX_TOKENS = 16;

type Head = { id: string; object: "text_completion"; created: number; model: string };

interface StreamPlan {
  head: Head;
  prompts: number[][];
  ids: TokenIdFields;
}

export function completionRoutes(app: Hono, deps: RunnerDeps): void {
  app.post("/v1/completions", validate("json", CompletionRequestSchema), async (c) => {
    const req = c.req.valid("json");
    const topLogprobs = req.logprobs ?? null;
    const prompts = await completionPrompts(deps, req.prompt, c.req.raw.signal);
    const ids = tokenIdFields(deps.tokenizer, req);
    const generations = startAll(deps, req, {
      prompts,
      param: "prompt",
      defaultMaxTokens: DEFAULT_MAX_TOKENS,
      topLogprobs,
      signal: c.req.raw.signal,
      tenant: tenantOf(c, deps),
    });
    const head: Head = {
      id: completionId("cmpl"),
      object: "text_completion",
      created: nowSeconds(),
      model: req.model,
    };
    if (req.stream) return streamCompletions(c, deps, generations, { head, prompts, ids }, req);
    const results = await Promise.all(generations.map(collect));
    return c.json({
      ...head,
      choices: results.map((r, index) => ({
        index,
        text: r.text,
        logprobs: topLogprobs === null ? null : completionLogprobs(deps.tokenizer, r.tokens, 0),
        finish_reason: r.finishReason,
        ...(ids.prompt ? { prompt_token_ids: prompts[index] } : {}),
        ...(ids.completion ? { token_ids: r.tokenIds } : {}),
        ...(r.promptLogprobs === undefined
          ? {}
          : { prompt_logprobs: promptLogprobsOf(deps.tokenizer, r.promptLogprobs) }),
      })),
      usage: usageOf(
        results.reduce((s, r) => s + r.promptTokens, 0),
        results.reduce((s, r) => s + r.completionTokens, 0),
      ),
    });
  });
}

function streamCompletions(
  c: Context,
  deps: RunnerDeps,
  generations: AsyncIterable<GenerationEvent>[],
  plan: StreamPlan,
  req: CompletionRequest,
): Response {
  const { head, prompts, ids } = plan;
  const includeUsage = req.stream_options?.include_usage === true;
  // vLLM's continuous_usage_stats takes effect only with include_usage; each chunk counts its own choice
  const continuous = includeUsage && req.stream_options?.continuous_usage_stats === true;
  const wantLogprobs = req.logprobs != null;
  const generated = generations.map(() => 0);
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    JSON.stringify({ ...head, choices, ...(includeUsage ? { usage: null } : {}), ...extra });
  const offsets = generations.map(() => 0);
  // vLLM sends each prompt's ids once, in that choice's first chunk
  const promptSent = generations.map(() => !ids.prompt);
  let promptTokens = 0;
  let completionTokens = 0;
  return streamSSE(
    c,
    async (stream) => {
      for await (const { index, event } of mergeIndexed(generations)) {
        // an end's tokens are the stop token that ended it, counted in usage and token_ids as vLLM does
        const tokens = logprobTokens(event);
        generated[index] =
          event.type === "delta" ? (generated[index] as number) + tokens.length : event.completionTokens;
        // a delta whose text the decoder holds back still carries ids or logprobs the client asked for
        if (event.text === "" && event.type === "delta" && !wantLogprobs && !ids.completion) continue;
        const logprobs = wantLogprobs
          ? completionLogprobs(deps.tokenizer, tokens, offsets[index] as number)
          : null;
        offsets[index] = (offsets[index] as number) + event.text.length;
        const finishReason = event.type === "end" ? event.finishReason : null;
        if (event.type === "end") {
          promptTokens += event.promptTokens;
          completionTokens += event.completionTokens;
        }
        const promptIds = promptSent[index] ? {} : { prompt_token_ids: prompts[index] };
        promptSent[index] = true;
        const choice = { index, text: event.text, logprobs, finish_reason: finishReason, ...promptIds };
        const usage = continuous
          ? { usage: usageOf((prompts[index] as number[]).length, generated[index] as number) }
          : {};
        await stream.writeSSE({
          data: chunk([ids.completion ? { ...choice, token_ids: idsOf(event) } : choice], usage),
        });
      }
      if (includeUsage)
        await stream.writeSSE({ data: chunk([], { usage: usageOf(promptTokens, completionTokens) }) });
      await stream.writeSSE({ data: "[DONE]" });
    },
    streamErrorWriter(c),
  );
}
