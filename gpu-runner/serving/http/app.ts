// The runner's Hono app: auth, routes and one error renderer (docs/conventions.md#composition-roots,
// docs/conventions.md#errors). Built from injected deps
// so tests run it over a real engine without a listening socket.
import { Hono } from "hono";
import { AppError, errorEnvelope } from "../../../src/errors.ts";
import { toAppError } from "../../../src/http/errors.ts";
import { adapterRoutes } from "./adapter-routes.ts";
import { bearerAuth, PROBE_PATHS } from "./auth.ts";
import { chatRoutes } from "./chat.ts";
import { completionRoutes } from "./completions.ts";
import type { RunnerDeps } from "./deps.ts";
import { opsRoutes } from "./ops-routes.ts";
import { vllmRoutes } from "./vllm-routes.ts";

export type { RunnerDeps } from "./deps.ts";

export function createApp(deps: RunnerDeps): Hono {
  const app = new Hono();
  app.use(async (c, next) => {
    const requestId = c.req.header("x-request-id") ?? crypto.randomUUID();
    c.header("x-request-id", requestId);
    await next();
  });
  app.use(bearerAuth(deps.runnerToken, deps.publicProbes ? PROBE_PATHS : []));
  opsRoutes(app, deps);
  completionRoutes(app, deps);
  chatRoutes(app, deps);
  adapterRoutes(app, deps);
  vllmRoutes(app, deps);
  app.notFound((c) => {
    const error = new AppError("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`);
    return c.json(errorEnvelope(error), 404);
  });
  app.onError((error, c) => {
    const appError = toAppError(error);
    if (appError.status >= 500) console.error("runner request failed:", error);
    return c.json(errorEnvelope(appError), appError.status as 400);
  });
  return app;
}
