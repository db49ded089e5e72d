// The hot path of a route: is `model` a route, which variant answers this subject, and what to record.
// Everything after the answer starts streaming (exposures, shadow copies, guardrails) runs in waitUntil.
import type { Context } from "hono";
import { SUBJECT_HEADER, type Variant } from "../../../src/contracts/experiments.ts";
import { AppError } from "../../../src/errors.ts";
import { assign } from "../../../src/experiments/assign.ts";
import type { EdgeEnv } from "../env.ts";
import type { Target } from "../inference/infer.ts";
import type { Exposure, StoredRoute } from "./experiment-store.ts";
import { cachedRoute } from "./experiments-cache.ts";
import { drain, type Observed, observe, recordExposure, subjectHash } from "./exposures.ts";

/**
 * Resolves a model name and forwards the request to it: v1.ts builds it, so routing never learns how.
 * `detached` marks a copy that must outlive the client's request (a shadow); `line` is the route and
 * variant its usage is metered under (usage/request-meter.ts).
 */
export type Send = (
  model: string,
  detached?: boolean,
  line?: { route: string; variant: string; shadow: boolean },
) => Promise<{ target: Target; res: Response }>;

const lineOf = (s: { route: StoredRoute; variant: Variant }) => ({
  route: s.route.name,
  variant: s.variant.name,
  shadow: s.variant.shadow,
});

export interface RoutedBody {
  model: string;
  user?: string | undefined;
}

function adapterOf(target: Target | null): string | null {
  if (target === null) return null;
  return target.kind === "base" ? target.id : `${target.row.name}@${target.row.version}`;
}

function subjectOf(c: Context<EdgeEnv>, route: StoredRoute, body: RoutedBody): string | null {
  switch (route.config.subject) {
    case "user":
      return body.user || null;
    case "header":
      return c.req.header(SUBJECT_HEADER) || null;
    case "api_key": {
      const principal = c.get("principal");
      return principal.kind === "key" ? principal.keyId : null;
    }
  }
}

/** Hono throws on `executionCtx` where the runtime gives none; then background work just runs unawaited. */
function later(c: Context<EdgeEnv>, work: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    work.catch((error) => console.error("experiments: background work failed:", error));
  }
}

interface Serving {
  c: Context<EdgeEnv>;
  route: StoredRoute;
  variant: Variant;
  subject: string | null;
  send: Send;
}

function record(s: Serving, target: Target | null, started: number, seen: Observed): Promise<void> {
  return (async () => {
    const exposure: Exposure = {
      tenant: s.route.tenant,
      requestId: s.c.get("requestId"),
      routeId: s.route.id,
      routeVersion: s.route.version,
      variant: s.variant.name,
      shadow: s.variant.shadow,
      adapter: adapterOf(target),
      subjectHash: await subjectHash(s.route.config.salt, s.subject),
      latencyMs: Date.now() - started,
      ...seen,
    };
    await recordExposure(s.c.env.DB, {
      exposure,
      route: s.route.name,
      guardrails: s.route.config.guardrails,
    });
  })();
}

const failure = (error: unknown): Observed => ({
  status: error instanceof AppError ? error.status : 500,
  error: !(error instanceof AppError) || error.status >= 500,
  promptTokens: null,
  completionTokens: null,
});

async function serveLive(s: Serving): Promise<Response> {
  const started = Date.now();
  let sent: Awaited<ReturnType<Send>>;
  try {
    sent = await s.send(s.variant.target, false, lineOf(s));
  } catch (error) {
    later(s.c, record(s, null, started, failure(error)));
    throw error;
  }
  let finished!: (seen: Observed) => void;
  const seen = new Promise<Observed>((resolve) => {
    finished = resolve;
  });
  const res = observe(sent.res, (o) => finished(o));
  later(
    s.c,
    seen.then((o) => record(s, sent.target, started, o)),
  );
  return res;
}

async function serveShadow(s: Serving): Promise<void> {
  const started = Date.now();
  try {
    const { target, res } = await s.send(s.variant.target, true, lineOf(s));
    await record(s, target, started, await drain(res));
  } catch (error) {
    await record(s, null, started, failure(error));
  }
}

function tagged(res: Response, route: StoredRoute, variant: string): Response {
  // A fresh Response: the one passed in may carry immutable headers (a fetch result).
  const out = new Response(res.body, res);
  out.headers.set("x-experiment", route.name);
  out.headers.set("x-variant", variant);
  return out;
}

/**
 * Serves a request whose `model` names one of the tenant's routes; null when it names none. A running route
 * assigns and records; a paused or concluded one serves its winner (or control) and records nothing.
 */
export async function routeInference(c: Context<EdgeEnv>, tenant: string, body: RoutedBody, send: Send) {
  const route = await cachedRoute(c.env.DB, tenant, body.model);
  if (route === null) return null;
  if (route.status !== "running") {
    const name = route.winner ?? route.config.control;
    const variant = route.config.variants.find((v) => v.name === name);
    if (variant === undefined)
      throw new AppError("internal_error", `route ${route.name} has no variant ${name}`);
    return tagged((await send(variant.target, false, lineOf({ route, variant }))).res, route, name);
  }
  const subject = subjectOf(c, route, body);
  // No subject: a one-off random id, so the split still holds across requests without stickiness.
  const assignment = assign(route.name, route.config, subject ?? crypto.randomUUID());
  for (const shadow of assignment.shadows) {
    later(c, serveShadow({ c, route, variant: shadow, subject, send }));
  }
  const res = await serveLive({ c, route, variant: assignment.variant, subject, send });
  return tagged(res, route, assignment.variant.name);
}
