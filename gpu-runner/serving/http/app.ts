// The runner's Hono app: auth, routes and one error renderer (docs/conventions.md#composition-roots,
// docs/conventions.md#errors). Built from injected deps
// so tests run it over a real engine without a listening socket.
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { AppError, errorEnvelope } from "../../../src/errors.ts";
import { adapterRoutes } from "./adapter-routes.ts";
import { bearerAuth } from "./auth.ts";
import { chatRoutes } from "./chat.ts";
import { completionRoutes } from "./completions.ts";
import type { RunnerDeps } from "./deps.ts";
import { opsRoutes } from "./ops-routes.ts";

export type { RunnerDeps } from "./deps.ts";

function toAppError(error: Error): AppError {
  if (error instanceof AppError) return error;
  // hono raises HTTPException for bodies it cannot parse (e.g. malformed JSON)
  if (error instanceof HTTPException && error.status < 500) {
    return new AppError("invalid_request", `request body: ${error.message || "cannot be parsed"}`);
  }
  console.error("runner request failed:", error);
  return new AppError("internal_error", "internal error; see the runner's log");
}

export function createApp(deps: RunnerDeps): Hono {
  const app = new Hono();
  app.use(async (c, next) => {
    const requestId = c.req.header("x-request-id") ?? crypto.randomUUID();
    c.header("x-request-id", requestId);
    await next();
  });
  app.use(bearerAuth(deps.runnerToken));
  opsRoutes(app, deps);
  completionRoutes(app, deps);
  chatRoutes(app, deps);
  adapterRoutes(app, deps);
  app.notFound((c) => {
    const error = new AppError("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`);
    return c.json(errorEnvelope(error), 404);
  });
  app.onError((error, c) => {
    const appError = toAppError(error);
    return c.json(errorEnvelope(appError), appError.status as 400);
  });
  return app;
}
