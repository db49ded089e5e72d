// Inference: resolve `model` to a base model or one immutable adapter version, forward to the runner with
// the adapter's identity, stream the answer back untouched. A runner that does not hold the adapter says
// `adapter_not_loaded`; the edge then streams the weights from R2 to it and retries once.
import { parseModelRef } from "../../../src/contracts/names.ts";
import { AppError } from "../../../src/errors.ts";
import type { RunnerClient } from "../runner/runner-client.ts";
import { BaseModelStore } from "../stores/base-model-store.ts";
import { BlobStore } from "../stores/blob-store.ts";
import { RegistryStore, type VersionRow } from "../stores/registry-store.ts";

export type Target = { kind: "base"; id: string } | { kind: "adapter"; row: VersionRow };

/** A base model id wins over an adapter name, so no tenant can shadow the base for its callers. */
export async function resolveModel(env: Env, tenant: string, model: string): Promise<Target> {
  const base = await new BaseModelStore(env.DB).get(model);
  if (base !== null) return { kind: "base", id: base.spec.id };
  const row = await new RegistryStore(env.DB).resolve(tenant, parseModelRef(model));
  return { kind: "adapter", row };
}

export interface InferInput {
  env: Env;
  runner: RunnerClient;
  path: "/v1/chat/completions" | "/v1/completions";
  body: Record<string, unknown>;
  target: Target;
  requestId: string;
}

const PASSED_HEADERS = [
  "content-type",
  "cache-control",
  "x-ratelimit-limit-requests",
  "x-ratelimit-remaining-requests",
];

export async function forwardInference(input: InferInput): Promise<Response> {
  const { target, runner } = input;
  const routingKey = target.kind === "base" ? target.id : target.row.runner_adapter_id;
  const body = { ...input.body, model: routingKey };
  const init = { routingKey, requestId: input.requestId };
  let res = await runner.forward(input.path, body, init);
  if (target.kind === "adapter" && res.status === 409) {
    const text = await res.text();
    if (!isAdapterNotLoaded(text)) return passThrough(new Response(text, res), target);
    await loadAdapter(input.env, runner, target.row, input.requestId);
    res = await runner.forward(input.path, body, init);
  }
  return passThrough(res, target);
}

function isAdapterNotLoaded(text: string): boolean {
  try {
    return (JSON.parse(text) as { error?: { code?: unknown } }).error?.code === "adapter_not_loaded";
  } catch {
    return false;
  }
}

async function loadAdapter(
  env: Env,
  runner: RunnerClient,
  row: VersionRow,
  requestId: string,
): Promise<void> {
  const blob = await new BlobStore(env.ADAPTERS).blob(row.weights_sha256);
  if (blob === null) {
    throw new AppError(
      "internal_error",
      `blob ${row.weights_sha256} of ${row.name}@${row.version} is missing from R2`,
    );
  }
  await runner.loadAdapter(
    {
      adapterId: row.runner_adapter_id,
      label: `${row.name}@${row.version}`,
      config: row.config,
      weightsSha256: row.weights_sha256,
      weights: blob.body,
      sizeBytes: blob.size,
    },
    requestId,
  );
}

/** The runner's body streams through as it arrives; only our headers are added. */
function passThrough(res: Response, target: Target): Response {
  if (res.status === 401 || res.status === 403) {
    throw new AppError(
      "upstream_error",
      `the runner refused the edge's credentials (${res.status}); check RUNNER_TOKEN`,
    );
  }
  const headers = new Headers();
  for (const name of PASSED_HEADERS) {
    const value = res.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  if (target.kind === "adapter") headers.set("x-adapter", `${target.row.name}@${target.row.version}`);
  return new Response(res.body, { status: res.status, headers });
}
