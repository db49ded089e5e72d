// POST /v1/chat/completions: the chat template renders the messages, then one generation runs.
import type { Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import {
  type ChatCompletionRequest,
  ChatCompletionRequestSchema,
  messageText,
} from "../../../src/contracts/openai.ts";
import { validate } from "../../../src/http/validate.ts";
import type { RunnerDeps } from "./deps.ts";
import type { GenerationEvent } from "./generate.ts";
import {
  chatLogprobs,
  collect,
  completionId,
  idsOf,
  logprobTokens,
  nowSeconds,
  promptLogprobsOf,
  type TokenIdFields,
  tokenIdFields,
  usageOf,
} from "./openai-format.ts";
import { promptJob, startAll, tenantOf } from "./requests.ts";
import { streamErrorWriter } from "./sse.ts";

async function promptIds(
  deps: RunnerDeps,
  req: ChatCompletionRequest,
  signal: AbortSignal,
): Promise<number[]> {
  const messages = req.messages.map((m) => ({ ...m, content: messageText(m) }));
  const continueFinalMessage = req.continue_final_message === true;
  // vLLM's extensions: add_generation_prompt defaults to on; continuing the last message turns it off (the
  // schema refuses an explicit add_generation_prompt: true beside it)
  const addGenerationPrompt = !continueFinalMessage && req.add_generation_prompt !== false;
  return await deps.prompts.encodeChat(
    messages,
    {
      addGenerationPrompt,
      continueFinalMessage,
      ...(req.chat_template_kwargs ? { kwargs: req.chat_template_kwargs } : {}),
    },
    promptJob(deps, "messages", signal),
  );
}

export function chatRoutes(app: Hono, deps: RunnerDeps): void {
  app.post("/v1/chat/completions", validate("json", ChatCompletionRequestSchema), async (c) => {
    const req = c.req.valid("json");
    const topLogprobs = req.logprobs ? (req.top_logprobs ?? 0) : null;
    const prompt = await promptIds(deps, req, c.req.raw.signal);
    const ids = tokenIdFields(deps.tokenizer, req);
    const [events] = startAll(deps, req, {
      prompts: [prompt],
      param: "messages",
      defaultMaxTokens: null,
      topLogprobs,
      signal: c.req.raw.signal,
      tenant: tenantOf(c, deps),
    }) as [AsyncIterable<GenerationEvent>];
    const head = { id: completionId("chatcmpl"), created: nowSeconds(), model: req.model };
    // vLLM puts the prompt's ids on the response (the first chunk when streaming), not on the choice
    const promptField = ids.prompt ? { prompt_token_ids: prompt } : {};
    if (req.stream)
      return streamChat(c, deps, events, { head, promptField, ids, promptTokens: prompt.length }, req);
    const result = await collect(events);
    return c.json({
      ...head,
      object: "chat.completion" as const,
      ...promptField,
      // vLLM's place for a chat's prompt logprobs: the response, beside prompt_token_ids
      ...(result.promptLogprobs === undefined
        ? {}
        : { prompt_logprobs: promptLogprobsOf(deps.tokenizer, result.promptLogprobs) }),
      choices: [
        {
          index: 0,
          message: { role: "assistant" as const, content: result.text },
          logprobs: topLogprobs === null ? null : { content: chatLogprobs(deps.tokenizer, result.tokens) },
          finish_reason: result.finishReason,
          ...(ids.completion ? { token_ids: result.tokenIds } : {}),
        },
      ],
      usage: usageOf(result.promptTokens, result.completionTokens),
    });
  });
}

interface ChatStreamPlan {
  head: { id: string; created: number; model: string };
  promptField: { prompt_token_ids?: number[] };
  ids: TokenIdFields;
  promptTokens: number;
}

function streamChat(
  c: Context,
  deps: RunnerDeps,
  events: AsyncIterable<GenerationEvent>,
  plan: ChatStreamPlan,
  req: ChatCompletionRequest,
): Response {
  const { head, ids } = plan;
  const includeUsage = req.stream_options?.include_usage === true;
  // vLLM's continuous_usage_stats takes effect only with include_usage
  const continuous = includeUsage && req.stream_options?.continuous_usage_stats === true;
  const wantLogprobs = req.logprobs === true;
  let generated = 0;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      ...head,
      object: "chat.completion.chunk",
      choices,
      ...(includeUsage ? { usage: continuous ? usageOf(plan.promptTokens, generated) : null } : {}),
      ...extra,
    });
  return streamSSE(
    c,
    async (stream) => {
      await stream.writeSSE({
        data: chunk(
          [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
          plan.promptField,
        ),
      });
      for await (const event of events) {
        if (event.type === "delta") {
          generated += event.tokens.length;
          if (event.text === "" && !wantLogprobs && !ids.completion) continue;
          const logprobs = wantLogprobs ? { content: chatLogprobs(deps.tokenizer, event.tokens) } : null;
          const tokenIds = ids.completion ? { token_ids: idsOf(event) } : {};
          await stream.writeSSE({
            data: chunk([
              { index: 0, delta: { content: event.text }, logprobs, finish_reason: null, ...tokenIds },
            ]),
          });
          continue;
        }
        generated = event.completionTokens;
        const delta = event.text === "" ? {} : { content: event.text };
        const tokenIds = ids.completion ? { token_ids: idsOf(event) } : {};
        // the stop token that ended it is counted in usage and token_ids, so its logprob comes here too
        const stopTokens = logprobTokens(event);
        const logprobs =
          wantLogprobs && stopTokens.length > 0
            ? { content: chatLogprobs(deps.tokenizer, stopTokens) }
            : null;
        await stream.writeSSE({
          data: chunk([{ index: 0, delta, logprobs, finish_reason: event.finishReason, ...tokenIds }]),
        });
        if (includeUsage) {
          await stream.writeSSE({
            data: chunk([], { usage: usageOf(event.promptTokens, event.completionTokens) }),
          });
        }
      }
      await stream.writeSSE({ data: "[DONE]" });
    },
    streamErrorWriter(c),
  );
}
