// Inference: resolve `model` to a base model or one immutable adapter version, forward it over the runner
// pool with the adapter's identity (runner/dispatch.ts: affinity, failover, loads from R2), and stream the
// answer back untouched, with `server-timing`, `x-adapter` and `x-adapter-cold`.
import { parseModelRef } from "../../../src/contracts/names.ts";
import { AppError } from "../../../src/errors.ts";
import { type Dispatched, dispatch } from "../pool/dispatch.ts";
import { guardStream } from "../pool/guard-stream.ts";
import type { AdapterLoad, RunnerClient } from "../pool/runner-client.ts";
import { ServerTiming } from "../pool/server-timing.ts";
import { BaseModelStore } from "../registry/base-model-store.ts";
import { BlobStore } from "../registry/blob-store.ts";
import { cachedBaseModels, cachedVersion } from "../registry/model-cache.ts";
import { RegistryStore, type VersionRow } from "../registry/registry-store.ts";

export type Target = { kind: "base"; id: string } | { kind: "adapter"; row: VersionRow };

/**
 * A base model id wins over an adapter name, so no tenant can shadow the base for its callers. Both lookups
 * go through the isolate's caches (cache/model-cache.ts): a warm request touches no D1. The row is shared
 * with other requests, so it is read, never changed.
 */
export async function resolveModel(env: Env, tenant: string, model: string): Promise<Target> {
  const bases = await cachedBaseModels(() => new BaseModelStore(env.DB).byId());
  const base = bases.get(model);
  if (base !== undefined) return { kind: "base", id: base.spec.id };
  const ref = parseModelRef(model);
  const row = await cachedVersion(tenant, ref, () => new RegistryStore(env.DB).resolve(tenant, ref));
  return { kind: "adapter", row };
}

export interface InferInput {
  env: Env;
  runner: RunnerClient;
  path: "/v1/chat/completions" | "/v1/completions";
  body: Record<string, unknown>;
  target: Target;
  requestId: string;
  /** The tenant the request runs for: runners schedule tenants fairly by it. */
  tenant: string;
  /** Time spent resolving `model`, for `server-timing`. */
  resolveMs?: number;
  /** The client's request signal: when it aborts, the upstream request is cancelled. */
  signal?: AbortSignal;
  /** Lets the pool refresh what it knows about runners after the response (ExecutionContext.waitUntil). */
  waitUntil?: (promise: Promise<unknown>) => void;
}

const PASSED_HEADERS = [
  "content-type",
  "retry-after",
  "cache-control",
  "x-ratelimit-limit-requests",
  "x-ratelimit-remaining-requests",
];

/** How old the isolate's picture of runner residency may get before it is re-read in the background. */
const RESIDENCY_MAX_AGE_MS = 30_000;

export async function forwardInference(input: InferInput): Promise<Response> {
  const { target, runner } = input;
  const timing = new ServerTiming();
  if (input.resolveMs !== undefined) timing.add("resolve", input.resolveMs);
  input.waitUntil?.(runner.refresh(RESIDENCY_MAX_AGE_MS));
  const routingKey = target.kind === "base" ? target.id : target.row.runner_adapter_id;
  const adapter =
    target.kind === "base" ? null : { adapterId: routingKey, open: () => openAdapter(input.env, target.row) };
  if (target.kind === "adapter") refuseUnservable(target.row);
  const out = await dispatchRecordingRefusal(input, {
    client: runner,
    path: input.path,
    body: { ...input.body, model: routingKey },
    routingKey,
    baseModel: target.kind === "base" ? target.id : target.row.base_model_id,
    adapter,
    requestId: input.requestId,
    tenant: input.tenant,
    signal: input.signal,
    timing,
  });
  return respond(out, target, timing);
}

/** A version a runner refused is not streamed again: it answers 422 with the runner's recorded reason. */
function refuseUnservable(row: VersionRow): void {
  if (row.unservable_reason === null) return;
  throw new AppError(
    "adapter_unservable",
    `${row.name}@${row.version} cannot be served: a runner refused its weights at ${row.unservable_at}: ${row.unservable_reason}; publish a corrected version`,
    { param: "model" },
  );
}

/** Dispatches; a runner's refusal of the version's weights is recorded on the version before it is answered. */
async function dispatchRecordingRefusal(
  input: InferInput,
  args: Parameters<typeof dispatch>[0],
): Promise<Dispatched> {
  try {
    return await dispatch(args);
  } catch (error) {
    const { target } = input;
    if (error instanceof AppError && error.code === "adapter_unservable" && target.kind === "adapter") {
      const reason = error.message.replace(/^.*? refused its weights: /, "");
      await new RegistryStore(input.env.DB).markUnservable(input.tenant, target.row, reason);
    }
    throw error;
  }
}

/** The version's weights from R2, as a load for a runner (requests and warm pushes). */
export async function openAdapter(env: Env, row: VersionRow): Promise<AdapterLoad> {
  const blob = await new BlobStore(env.ADAPTERS).blob(row.weights_sha256);
  if (blob === null) {
    throw new AppError(
      "internal_error",
      `blob ${row.weights_sha256} of ${row.name}@${row.version} is missing from R2`,
    );
  }
  return {
    adapterId: row.runner_adapter_id,
    label: `${row.name}@${row.version}`,
    config: row.config,
    weightsSha256: row.weights_sha256,
    weights: blob.body,
    sizeBytes: blob.size,
  };
}

/** The runner's body streams through as it arrives; only our headers are added. */
function respond(out: Dispatched, target: Target, timing: ServerTiming): Response {
  const { res } = out;
  if (res.status === 401 || res.status === 403) {
    out.release();
    throw new AppError(
      "upstream_error",
      `a runner refused the edge's credentials (${res.status}); check RUNNER_TOKEN / RUNNERS`,
    );
  }
  const headers = new Headers();
  for (const name of PASSED_HEADERS) {
    const value = res.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  if (target.kind === "adapter") headers.set("x-adapter", `${target.row.name}@${target.row.version}`);
  if (out.cold) headers.set("x-adapter-cold", "1");
  headers.set("server-timing", timing.header());
  if (res.body === null) {
    out.release();
    return new Response(null, { status: res.status, headers });
  }
  const body = guardStream(res.body, {
    sse: (res.headers.get("content-type") ?? "").startsWith("text/event-stream"),
    onEnd(outcome) {
      out.release();
      if (outcome === "failed") out.failedMidway();
    },
    failure: () =>
      new AppError("upstream_error", "the runner failed while streaming the response; retry the request"),
    // Clients see the version they were served as `model`, not the runner's content id.
    ...(target.kind === "adapter"
      ? { rename: { from: target.row.runner_adapter_id, to: `${target.row.name}@${target.row.version}` } }
      : {}),
  });
  return new Response(body, { status: res.status, headers });
}
