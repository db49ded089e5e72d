// From a validated OpenAI request to scheduler inputs: which slot (`model`), which prompt ids, how many
// tokens, which sampling. Limits that depend on the model (context length, vocabulary) are checked here,
// before anything starts.
import {
  type CompletionRequest,
  samplingParams,
  type VllmSamplingParams,
  vllmSamplingParams,
} from "../../../src/contracts/openai.ts";
import { AppError } from "../../../src/errors.ts";
import type { SamplingParams as SamplerParams } from "../../engine/sampler.ts";
import { tokenIdsOnly } from "../../engine/tokenizer/tokenizer-absent.ts";
import type { Lease } from "../adapters.ts";
import type { RunnerDeps } from "./deps.ts";
import { type GenerationEvent, type GenerationInput, startGeneration } from "./generate.ts";
import { isBaseModel } from "./model-cards.ts";

export type OpenAiRequest = Parameters<typeof samplingParams>[0];

export function leaseFor(deps: RunnerDeps, model: string): Lease {
  if (isBaseModel(deps, model)) return { slot: 0, adapterId: "base", release: () => {} };
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

/** What the prompt is called in vLLM's context-length messages, by the request's `param`. */
function promptNoun(param: string): string {
  return param === "messages" ? "messages" : "prompt";
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
  // OpenAI and vLLM refuse a prompt that leaves no room for one generated token, in vLLM's words
  if (ids.length >= maxPositions) {
    const noun = promptNoun(param);
    throw new AppError(
      "invalid_request",
      `${param}: This model's maximum context length is ${maxPositions} tokens. However, your request has ${ids.length} input tokens, which leaves no room for a completion. Please reduce the length of the ${noun}.`,
      { param },
    );
  }
}

/**
 * OpenAI and vLLM refuse max_tokens that do not fit beside the prompt (400, in vLLM's words) rather than
 * shortening the completion; `field` is the field that asked (max_tokens or max_completion_tokens).
 */
function checkContext(
  deps: RunnerDeps,
  ids: number[],
  param: string,
  field: string,
  maxTokens: number,
): void {
  const { maxPositions } = deps.engine.info;
  if (ids.length + maxTokens <= maxPositions) return;
  const noun = promptNoun(param);
  throw new AppError(
    "invalid_request",
    `${field}: This model's maximum context length is ${maxPositions} tokens. However, you requested ${ids.length + maxTokens} tokens (${ids.length} in the ${noun}, ${maxTokens} in the completion). Please reduce the length of the ${noun} or completion.`,
    { param: field },
  );
}

/** Token ids the request names (stop_token_ids, logit_bias keys) must exist in this model's vocabulary. */
function checkTokenIds(deps: RunnerDeps, vllm: VllmSamplingParams): void {
  const { vocabSize } = deps.engine.info;
  const stop = vllm.stopTokenIds.findIndex((id) => id >= vocabSize);
  if (stop !== -1) {
    throw new AppError(
      "invalid_request",
      `stop_token_ids[${stop}]: token ids must be < vocab size ${vocabSize}; got ${vllm.stopTokenIds[stop]}`,
      { param: `stop_token_ids[${stop}]` },
    );
  }
  for (const id of vllm.logitBias.keys()) {
    if (id >= vocabSize) {
      throw new AppError(
        "invalid_request",
        `logit_bias.${id}: token ids must be < vocab size ${vocabSize}; got ${id}`,
        { param: `logit_bias.${id}` },
      );
    }
  }
}

/**
 * The ids that end a generation: the model's eos ids unless ignore_eos (vLLM ignores every eos id then,
 * generation_config's included), and always the request's stop_token_ids.
 */
function stopTokenIdsOf(deps: RunnerDeps, vllm: VllmSamplingParams): number[] {
  return [...new Set([...(vllm.ignoreEos ? [] : deps.stopTokenIds), ...vllm.stopTokenIds])];
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
  const params = samplingParams(req, deps.samplingDefaults);
  const vllm = vllmSamplingParams(req, deps.samplingDefaults);
  // stop strings are matched on decoded text, which a model without a tokenizer never produces
  if (params.stop.length > 0 && deps.tokenizer.mode === "token_ids")
    throw tokenIdsOnly(
      deps.modelId,
      "stop",
      "stop strings cannot be matched without text",
      "leave stop out: generation still ends at the model's eos token ids and at max_tokens",
    );
  checkTokenIds(deps, vllm);
  const { maxPositions } = deps.engine.info;
  const maxTokensField =
    typeof req.max_completion_tokens === "number" ? "max_completion_tokens" : "max_tokens";
  for (const ids of options.prompts) {
    checkPrompt(deps, ids, options.param);
    if (params.maxTokens !== null) checkContext(deps, ids, options.param, maxTokensField, params.maxTokens);
  }
  const sampling: SamplerParams = {
    temperature: params.temperature,
    topP: params.topP,
    topK: params.topK,
    topLogprobs: options.topLogprobs,
    presencePenalty: params.presencePenalty,
    frequencyPenalty: params.frequencyPenalty,
    repetitionPenalty: vllm.repetitionPenalty,
    minP: vllm.minP,
    logitBias: vllm.logitBias,
  };
  const stopTokenIds = stopTokenIdsOf(deps, vllm);
  const controller = new AbortController();
  const signal = AbortSignal.any([options.signal, controller.signal]);
  const started: AsyncIterable<GenerationEvent>[] = [];
  try {
    for (const promptIds of options.prompts) {
      const room = maxPositions - promptIds.length;
      const input: GenerationInput = {
        promptIds,
        lease: leaseFor(deps, req.model),
        lora: isBaseModel(deps, req.model) ? null : req.model,
        // an unasked default (the legacy endpoint's 16) still shrinks to fit; an asked one was checked above
        maxTokens: Math.min(params.maxTokens ?? options.defaultMaxTokens ?? room, room),
        sampling,
        seed: params.seed,
        stop: params.stop,
        stopTokenIds,
        minTokens: vllm.minTokens,
        includeStopStrInOutput: vllm.includeStopStrInOutput,
        skipSpecialTokens: vllm.skipSpecialTokens,
        promptLogprobs: vllm.promptLogprobs,
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
