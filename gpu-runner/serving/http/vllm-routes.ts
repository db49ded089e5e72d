// vLLM's utility endpoints: POST /tokenize, POST /detokenize, GET /version. Every model this runner serves
// shares the base's tokenizer, so `model` only has to name one of them.
import type { Hono } from "hono";
import { messageText } from "../../../src/contracts/openai.ts";
import {
  type DetokenizeResponse,
  DetokenizeRequestSchema,
  type TokenizeRequest,
  TokenizeRequestSchema,
  type TokenizeResponse,
  type VersionResponse,
} from "../../../src/contracts/runner-vllm.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import { unknownModel } from "../adapters.ts";
import type { RunnerDeps } from "./deps.ts";
import { isBaseModel } from "./model-cards.ts";

/** 404 model_not_found unless `model` is absent, the base, or a resident adapter. */
function checkModel(deps: RunnerDeps, model: string | null | undefined): void {
  if (model == null || isBaseModel(deps, model)) return;
  if (deps.adapters.find(model) === null) throw unknownModel(model);
}

async function tokenize(deps: RunnerDeps, req: TokenizeRequest, signal: AbortSignal): Promise<number[]> {
  const { prompts } = deps;
  if (req.messages !== undefined) {
    const messages = req.messages.map((m) => ({ ...m, content: messageText(m) }));
    return await prompts.encodeChat(
      messages,
      {
        addGenerationPrompt: req.add_generation_prompt ?? true,
        ...(req.chat_template_kwargs ? { kwargs: req.chat_template_kwargs } : {}),
        addSpecialTokens: req.add_special_tokens ?? false,
      },
      { param: "messages", signal },
    );
  }
  return await prompts.encode(
    req.prompt ?? "",
    { addSpecialTokens: req.add_special_tokens ?? true },
    { param: "prompt", signal },
  );
}

export function vllmRoutes(app: Hono, deps: RunnerDeps): void {
  app.post("/tokenize", validate("json", TokenizeRequestSchema), async (c) => {
    const req = c.req.valid("json");
    checkModel(deps, req.model);
    const tokens = await tokenize(deps, req, c.req.raw.signal);
    const body: TokenizeResponse = {
      count: tokens.length,
      max_model_len: deps.engine.info.maxPositions,
      tokens,
    };
    return c.json(body);
  });

  app.post("/detokenize", validate("json", DetokenizeRequestSchema), (c) => {
    const req = c.req.valid("json");
    checkModel(deps, req.model);
    const { vocabSize } = deps.engine.info;
    const at = req.tokens.findIndex((id) => id >= vocabSize);
    if (at !== -1) {
      throw new AppError(
        "invalid_request",
        `tokens[${at}]: must be < vocab size ${vocabSize}; got ${req.tokens[at]}`,
        { param: "tokens" },
      );
    }
    const body: DetokenizeResponse = { prompt: deps.tokenizer.decode(req.tokens) };
    return c.json(body);
  });

  app.get("/version", (c) => {
    const body: VersionResponse = { version: deps.version };
    return c.json(body);
  });
}
