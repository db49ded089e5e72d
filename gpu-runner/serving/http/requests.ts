// From a validated OpenAI request to scheduler inputs: which slot (`model`), which prompt ids, how many
// tokens, which sampling. Limits that depend on the model (context length, vocabulary) are checked here.
import { type CompletionRequest, samplingParams } from "../../../src/contracts/openai.ts";
import { AppError } from "../../../src/errors.ts";
import { tokenIdsOnly } from "../../engine/tokenizer/tokenizer-absent.ts";
import type { Lease } from "../adapters.ts";
import type { RunnerDeps } from "./deps.ts";
import { type GenerationEvent, type GenerationInput, startGeneration } from "./generate.ts";

export type OpenAiRequest = Parameters<typeof samplingParams>[0];

export function leaseFor(deps: RunnerDeps, model: string): Lease {
  if (model === deps.modelId) return { slot: 0, adapterId: "base", release: () => {} };
  return deps.adapters.acquire(model);
}

/** Every prompt of a completions request as token ids (a string gets the tokenizer's special tokens). */
export function completionPrompts(deps: RunnerDeps, prompt: CompletionRequest["prompt"]): number[][] {
  const { tokenizer } = deps;
  if (typeof prompt === "string") return [tokenizer.encode(prompt)];
  if (prompt.length === 0)
    throw new AppError("invalid_request", "prompt: must not be empty", { param: "prompt" });
  if (prompt.every((p) => typeof p === "string")) return (prompt as string[]).map((p) => tokenizer.encode(p));
  if (prompt.every((p) => typeof p === "number")) return [prompt as number[]];
  return prompt as number[][];
}

function checkPrompt(deps: RunnerDeps, ids: number[], param: string): void {
  const { vocabSize, maxPositions } = deps.engine.info;
  if (ids.length === 0)
    throw new AppError("invalid_request", `${param}: must hold at least one token`, { param });
  const bad = ids.find((id) => id >= vocabSize);
  if (bad !== undefined) {
    throw new AppError(
      "invalid_request",
      `${param}: token ids must be < vocab size ${vocabSize}; got ${bad}`,
      {
        param,
      },
    );
  }
  if (ids.length >= maxPositions) {
    throw new AppError(
      "invalid_request",
      `${param}: prompt has ${ids.length} tokens; this model's context is ${maxPositions} (prompt + at least one generated token)`,
      { param },
    );
  }
}

export interface StartOptions {
  prompts: number[][];
  param: string;
  /** Used when the request sets no max_tokens: OpenAI's legacy completions default to 16. */
  defaultMaxTokens: number | null;
  topLogprobs: number | null;
  signal: AbortSignal;
}

/** Starts one generation per prompt; if any cannot start (queue_full), the started ones are cancelled. */
export function startAll(
  deps: RunnerDeps,
  req: OpenAiRequest,
  options: StartOptions,
): AsyncIterable<GenerationEvent>[] {
  const params = samplingParams(req);
  // stop strings are matched on decoded text, which a model without a tokenizer never produces
  if (params.stop.length > 0 && deps.tokenizer.mode === "token_ids")
    throw tokenIdsOnly(
      deps.modelId,
      "stop",
      "stop strings cannot be matched without text",
      "leave stop out: generation still ends at the model's eos token ids and at max_tokens",
    );
  const { maxPositions } = deps.engine.info;
  for (const ids of options.prompts) checkPrompt(deps, ids, options.param);
  const controller = new AbortController();
  const signal = AbortSignal.any([options.signal, controller.signal]);
  const started: AsyncIterable<GenerationEvent>[] = [];
  try {
    for (const promptIds of options.prompts) {
      const room = maxPositions - promptIds.length;
      const input: GenerationInput = {
        promptIds,
        lease: leaseFor(deps, req.model),
        lora: req.model === deps.modelId ? null : req.model,
        maxTokens: Math.min(params.maxTokens ?? options.defaultMaxTokens ?? room, room),
        sampling: {
          temperature: params.temperature,
          topP: params.topP,
          topK: params.topK,
          topLogprobs: options.topLogprobs,
          presencePenalty: params.presencePenalty,
          frequencyPenalty: params.frequencyPenalty,
        },
        seed: params.seed,
        stop: params.stop,
        stopTokenIds: deps.stopTokenIds,
        signal,
      };
      started.push(startGeneration(deps.scheduler, deps.tokenizer, input));
      deps.metrics.requests.inc({ adapter_id: input.lease.adapterId });
    }
  } catch (error) {
    controller.abort();
    throw error;
  }
  return started;
}
