// The public, OpenAI-compatible API. Keys need scope "infer"; every name resolves within the key's tenant.
import type { Context } from "hono";
import { Hono } from "hono";
import {
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  type ModelObject,
} from "../../../src/contracts/openai.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import type { EdgeEnv } from "../env.ts";
import { ExperimentStore } from "../experiments/experiment-store.ts";
import { routeInference, type Send } from "../experiments/routing.ts";
import { scoped, tenantWith } from "../http/auth.ts";
import { limitHeaders, withLimitHeaders } from "../limits/limit-headers.ts";
import { BaseModelStore } from "../registry/base-model-store.ts";
import { RegistryStore } from "../registry/registry-store.ts";
import { LimitExceeded, RequestMeter } from "../usage/request-meter.ts";
import { forwardInference, resolveModel, type Target } from "./infer.ts";

const seconds = (iso: string): number => Math.floor(Date.parse(iso) / 1000);

/** Hono throws on `executionCtx` where the runtime gives none (tests calling app.fetch without one). */
function waitUntilOf(c: Context<EdgeEnv>): ((p: Promise<unknown>) => void) | undefined {
  try {
    const ctx = c.executionCtx;
    return (p) => ctx.waitUntil(p);
  } catch {
    return undefined;
  }
}

async function infer(
  c: Context<EdgeEnv>,
  path: "/v1/chat/completions" | "/v1/completions",
  body: Record<string, unknown> & { model: string },
) {
  const { tenant } = tenantWith(c, "infer");
  const principal = c.get("principal");
  if (principal.kind !== "key") throw new AppError("internal_error", "inference without a tenant key");
  const meter = new RequestMeter({
    meters: c.env.TENANT_METER,
    tenant,
    keyId: principal.keyId,
    limits: principal.limits,
    waitUntil: waitUntilOf(c),
  });
  // Limits are decided before any model is resolved or runner touched (README, "Usage and limits").
  let limits: Awaited<ReturnType<RequestMeter["admit"]>>;
  try {
    limits = await meter.admit();
  } catch (error) {
    if (!(error instanceof LimitExceeded)) throw error;
    for (const [name, value] of error.headers) c.header(name, value);
    throw error.error;
  }
  const upstream = meter.upstreamBody(body);
  // `detached`: a shadow copy outlives the client's request, so it must not carry the client's signal.
  const send: Send = async (model, detached = false, line = undefined) => {
    const resolveStarted = performance.now();
    let target: Target | null = null;
    try {
      target = await resolveModel(c.env, tenant, model);
      const res = await forwardInference({
        env: c.env,
        runner: c.get("deps").runner(c.env),
        path,
        body: upstream.body,
        target,
        requestId: c.get("requestId"),
        tenant,
        resolveMs: performance.now() - resolveStarted,
        signal: detached ? undefined : c.req.raw.signal,
        waitUntil: waitUntilOf(c),
      });
      return {
        target,
        res: meter.measured(res, { adapter: labelOf(target), line, client: upstream.client }),
      };
    } catch (error) {
      meter.failed(error, { adapter: target === null ? "" : labelOf(target), line });
      throw error;
    }
  };
  try {
    // A route name (an A/B experiment) picks the variant's model first; anything else resolves as it is.
    const res = (await routeInference(c, tenant, body, send)) ?? (await send(body.model)).res;
    return withLimitHeaders(res, limits);
  } catch (error) {
    if (limits !== null) for (const [name, value] of limitHeaders(limits)) c.header(name, value);
    throw error;
  }
}

/** The usage line's name for what served a request: `name@version` or the base model id. */
function labelOf(target: Target): string {
  return target.kind === "base" ? target.id : `${target.row.name}@${target.row.version}`;
}

export const v1Routes = new Hono<EdgeEnv>()
  .use("*", scoped("infer"))
  .get("/models", async (c) => {
    const { tenant } = tenantWith(c, "infer");
    const [bases, adapters, routes] = await Promise.all([
      new BaseModelStore(c.env.DB).list(),
      new RegistryStore(c.env.DB).adapters(tenant),
      new ExperimentStore(c.env.DB).list(tenant),
    ]);
    const data: ModelObject[] = bases.map((b) => ({
      id: b.spec.id,
      object: "model",
      created: seconds(b.createdAt),
      owned_by: "lora-edge",
      parent: null,
      lora_edge: { kind: "base" },
    }));
    // A concluded route still answers (winner or control) so old clients keep working, but it is no longer
    // something to discover: new callers should name what it concluded on.
    const live = routes.filter((r) => r.status !== "concluded");
    // Any route answers its name before an adapter published later under it: that bare name is not the adapter.
    const routed = new Set(routes.map((r) => r.name));
    for (const a of adapters) {
      const entry = {
        object: "model" as const,
        created: seconds(a.createdAt),
        owned_by: tenant,
        parent: a.baseModel,
        lora_edge: { kind: "adapter" as const },
      };
      if (a.latest !== null && !routed.has(a.name)) data.push({ id: a.name, ...entry });
      for (const alias of Object.keys(a.aliases)) data.push({ id: `${a.name}@${alias}`, ...entry });
    }
    for (const r of live) {
      data.push({
        id: r.name,
        object: "model",
        created: seconds(r.created_at),
        owned_by: tenant,
        parent: null,
        lora_edge: { kind: "route" },
      });
    }
    return c.json({ object: "list", data });
  })
  .post("/chat/completions", validate("json", ChatCompletionRequestSchema), (c) =>
    infer(c, "/v1/chat/completions", c.req.valid("json")),
  )
  .post("/completions", validate("json", CompletionRequestSchema), (c) =>
    infer(c, "/v1/completions", c.req.valid("json")),
  );
