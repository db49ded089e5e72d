// What /v1/models and /v1/models/{id} show: the base model and every name a resident adapter answers to, as
// vLLM's model cards (root, parent, max_model_len, permission).
import type { RunnerModelObject } from "../../../src/contracts/runner-vllm.ts";
import { unknownModel } from "../adapters.ts";
import type { RunnerDeps } from "./deps.ts";

const OWNER = "lora-edge";

function baseCard(deps: RunnerDeps): RunnerModelObject {
  return {
    id: deps.modelId,
    object: "model",
    created: Math.floor(deps.startedAt / 1000),
    owned_by: OWNER,
    root: deps.modelPath,
    parent: null,
    max_model_len: deps.engine.info.maxPositions,
    permission: [],
  };
}

function adapterCard(deps: RunnerDeps, a: { id: string; root: string; loadedAt: number }): RunnerModelObject {
  return {
    id: a.id,
    object: "model",
    created: Math.floor(a.loadedAt / 1000),
    owned_by: OWNER,
    root: a.root,
    parent: deps.modelId,
    max_model_len: deps.engine.info.maxPositions,
    permission: [],
  };
}

export function modelCards(deps: RunnerDeps): RunnerModelObject[] {
  return [baseCard(deps), ...deps.adapters.servedModels().map((a) => adapterCard(deps, a))];
}

/** The card of `id` (the base, an adapter name or a resident content id); 404 model_not_found otherwise. */
export function modelCard(deps: RunnerDeps, id: string): RunnerModelObject {
  if (id === deps.modelId) return baseCard(deps);
  const served = deps.adapters.servedModel(id);
  if (served === null) throw unknownModel(id);
  return adapterCard(deps, served);
}
