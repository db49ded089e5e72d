// From a validated OpenAI request to scheduler inputs: which slot (`model`), which prompt ids, how many
// tokens, which sampling. Limits that depend on the model (context length, vocabulary) are checked here,
// before anything starts.
import type { Context } from "hono";
import {
  type CompletionRequest,
  samplingParams,
  type VllmSamplingParams,
  vllmSamplingParams,
} from "../../../src/contracts/openai.ts";
import { NAME_RULE, isValidName } from "../../../src/contracts/names.ts";
import { TENANT_HEADER } from "../../../src/contracts/runner.ts";
import { AppError } from "../../../src/errors.ts";
import type { SamplingParams as SamplerParams } from "../../engine/sampler.ts";
import { tokenIdsOnly } from "../../engine/tokenizer/tokenizer-absent.ts";
import type { JobOptions } from "../../engine/tokenizer/tokenizer-pool.ts";
import type { Lease } from "../adapters.ts";
import type { RunnerDeps } from "./deps.ts";
import { type GenerationEvent, type GenerationInput, startGeneration } from "./generate.ts";
import { isBaseModel } from "./model-cards.ts";

export type OpenAiRequest = Parameters<typeof samplingParams>[0];

/**
 * Each prompt is one sequence in the batch or the queue, so a request with more prompts than both hold
 * together could never be admitted: a 400 naming the bound, not a 429 that no retry would get past.
 */
export function refuseBeyondCapacity(deps: RunnerDeps, prompts: number): void {
  const { capacity } = deps.scheduler;
  if (prompts <= capacity) return;
  throw new AppError(
    "invalid_request",
    `prompt: must hold at most ${capacity} prompts on this runner (${deps.scheduler.capacityBound}); got ${prompts}`,
    { param: "prompt" },
  );
}

export function leaseFor(deps: RunnerDeps, model: string): Lease {
  if (isBaseModel(deps, model)) return { slot: 0, adapterId: "base", release: () => {} };
  return deps.adapters.acquire(model);
}

/**
 * The tenant the edge names in TENANT_HEADER, honoured only from an authenticated caller: a runner without an
 * API key cannot tell the edge from anyone else, so there every request is the runner's own (null).
 */
export function tenantOf(c: Context, deps: RunnerDeps): string | null {
  if (deps.runnerToken === null) return null;
  const value = c.req.header(TENANT_HEADER);
  if (value === undefined) return null;
  if (!isValidName(value)) {
    throw new AppError(
      "invalid_request",
      `${TENANT_HEADER}: must be a tenant name (${NAME_RULE}); got ${JSON.stringify(value.slice(0, 80))}`,
      { param: TENANT_HEADER },
    );
  }
  return value;
}

/** Every prompt of a completions request as token ids (a string gets the tokenizer's special tokens). */
export async function completionPrompts(
  deps: RunnerDeps,
  prompt: CompletionRequest["prompt"],
  signal: AbortSignal,
): Promise<number[][]> {
  // each prompt's refusal names the field "prompt", as the checks after tokenizing do
  const encode = (text: string) =>
    deps.prompts.encode(text, { addSpecialTokens: true }, promptJob(deps, "prompt", signal));
  if (typeof prompt === "string") return [await encode(prompt)];
  if (prompt.length === 0)
    throw new AppError("invalid_request", "prompt: must not be empty", { param: "prompt" });
  refuseBeyondCapacity(deps, prompt.every((p) => typeof p === "number") ? 1 : prompt.length);
  // one after another: a request's prompts take one worker at a time, leaving the others to other requests
  if (prompt.every((p) => typeof p === "string")) {
    const out: number[][] = [];
    for (const p of prompt as string[]) out.push(await encode(p));
    return out;
  }
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
  if (ids.length >= maxPositions) throw noRoomError(deps, ids.length, param);
}

/** OpenAI and vLLM refuse a prompt that leaves no room for one generated token, in vLLM's words. */
function noRoomError(deps: RunnerDeps, count: number, param: string): AppError {
  const { maxPositions } = deps.engine.info;
  return new AppError(
    "invalid_request",
    `${param}: This model's maximum context length is ${maxPositions} tokens. However, your request has ${count} input tokens, which leaves no room for a completion. Please reduce the length of the ${promptNoun(param)}.`,
    { param },
  );
}

/**
 * Tokenizing options for a prompt that must leave room for a completion: one that cannot is refused by the
 * tokenizer pool with the context message, without its ids being handed over.
 */
export function promptJob(deps: RunnerDeps, param: string, signal: AbortSignal): JobOptions {
  return {
    param,
    signal,
    tooLong: {
      maxIds: deps.engine.info.maxPositions - 1,
      refuse: (count) => noRoomError(deps, count, param),
    },
  };
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
  /** The tenant the edge named (tenantOf); null: the runner's own callers. */
  tenant?: string | null;
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
  refuseBeyondCapacity(deps, options.prompts.length);
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
        tenant: options.tenant ?? null,
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
