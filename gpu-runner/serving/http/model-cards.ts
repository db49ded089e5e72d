// What /v1/models and /v1/models/{id} show: the base model and every name a resident adapter answers to, as
// vLLM's model cards (root, parent, max_model_len, permission).
import type { RunnerModelObject } from "../../../src/contracts/runner-vllm.ts";
import { unknownModel } from "../adapters.ts";
import type { RunnerDeps } from "./deps.ts";

const OWNER = "lora-edge";

/** Whether `model` names the base: one of its served names (vLLM's --served-model-name answers to each). */
export function isBaseModel(deps: Pick<RunnerDeps, "servedModelNames">, model: string): boolean {
  return deps.servedModelNames.includes(model);
}

function baseCard(deps: RunnerDeps, name: string): RunnerModelObject {
  return {
    id: name,
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
    parent: deps.adapterParents.get(a.id) ?? deps.modelId,
    max_model_len: deps.engine.info.maxPositions,
    permission: [],
  };
}

export function modelCards(deps: RunnerDeps): RunnerModelObject[] {
  return [
    ...deps.servedModelNames.map((name) => baseCard(deps, name)),
    ...deps.adapters.servedModels().map((a) => adapterCard(deps, a)),
  ];
}

/** The card of `id` (the base, an adapter name or a resident content id); 404 model_not_found otherwise. */
export function modelCard(deps: RunnerDeps, id: string): RunnerModelObject {
  if (isBaseModel(deps, id)) return baseCard(deps, id);
  const served = deps.adapters.servedModel(id);
  if (served === null) throw unknownModel(id);
  return adapterCard(deps, served);
}
