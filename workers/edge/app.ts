// The edge's composition root: middleware, routes and the one error handler. Bindings come per request
// (env); the runner client is built from deps so tests can intercept the outbound call.
import { Hono } from "hono";
import { AppError, errorEnvelope } from "../../src/errors.ts";
import { toAppError } from "../../src/http/errors.ts";
import { createConsole } from "./console/app.tsx";
import type { AppDeps, EdgeEnv } from "./env.ts";
import { experimentRoutes, feedbackRoutes } from "./experiments/routes.ts";
import { fleetMembers } from "./fleet/fleet.ts";
import { fleetRoutes } from "./fleet/fleet-routes.ts";
import { authenticate } from "./http/auth.ts";
import { limitBodies, requireJsonBodies } from "./http/body-rules.ts";
import { requestId } from "./http/request-id.ts";
import { v1Routes } from "./inference/routes.ts";
import { poolConfigFrom } from "./pool/pool-config.ts";
import { createRunnerClient } from "./pool/runner-client.ts";
import { adapterRoutes } from "./registry/adapters-routes.ts";
import { baseModelRoutes } from "./registry/base-models-routes.ts";
import { uploadRoutes } from "./registry/uploads-routes.ts";
import { tenantRoutes } from "./tenants/routes.ts";
import { usageRoutes } from "./usage/usage-routes.ts";

export const defaultDeps: AppDeps = {
  runner: (env) =>
    createRunnerClient({
      pool: poolConfigFrom(env),
      members: fleetMembers(env),
      fetch: (input, init) => fetch(input, init),
    }),
};

export function createApp(deps: AppDeps = defaultDeps): Hono<EdgeEnv> {
  const app = new Hono<EdgeEnv>();
  app.use("*", requestId);
  app.use("*", async (c, next) => {
    c.set("deps", deps);
    await next();
  });
  app.get("/health", (c) => c.json({ ok: true }));
  app.use("/admin/*", authenticate);
  app.use("/v1/*", authenticate);
  // After authentication, so only a known caller can make the edge count an unsized body; before the routes,
  // so no handler or validator reads a body over its limit or of the wrong type (http/body-rules.ts).
  for (const prefix of ["/admin/*", "/v1/*", "/console/*"]) app.use(prefix, limitBodies);
  for (const prefix of ["/admin/*", "/v1/*"]) app.use(prefix, requireJsonBodies);
  app.route("/admin", tenantRoutes);
  app.route("/admin", baseModelRoutes);
  app.route("/admin", uploadRoutes);
  app.route("/admin", adapterRoutes);
  app.route("/admin", experimentRoutes);
  app.route("/admin", fleetRoutes);
  app.route("/admin", usageRoutes);
  app.route("/v1", v1Routes);
  app.route("/v1", feedbackRoutes);
  app.route("/console", createConsole());
  app.notFound((c) => {
    throw new AppError("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`);
  });
  app.onError((error, c) => {
    const appError = toAppError(error);
    // Caller mistakes log quietly; faults loudly (docs/conventions.md#errors).
    if (appError.status >= 500) console.error(`[${c.get("requestId")}]`, error);
    c.header("x-request-id", c.get("requestId"));
    return c.json(errorEnvelope(appError), appError.status as 400);
  });
  return app;
}
