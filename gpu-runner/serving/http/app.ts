// The runner's Hono app: auth, routes and one error renderer (docs/conventions.md#composition-roots,
// docs/conventions.md#errors). Built from injected deps
// so tests run it over a real engine without a listening socket.
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { AppError, errorEnvelope } from "../../../src/errors.ts";
import { toAppError } from "../../../src/http/errors.ts";
import { adapterRoutes } from "./adapter-routes.ts";
import { bearerAuth, PROBE_PATHS } from "./auth.ts";
import { chatRoutes } from "./chat.ts";
import { completionRoutes } from "./completions.ts";
import type { RunnerDeps } from "./deps.ts";
import { opsRoutes } from "./ops-routes.ts";
import { assignRequestId, publicEnvelope, REQUEST_ID_HEADER, requestIdOf } from "./request-id.ts";
import { vllmRoutes } from "./vllm-routes.ts";

export type { RunnerDeps } from "./deps.ts";

/**
 * Largest JSON body: room for a prompt at REQUEST_BOUNDS.maxPromptChars (src/contracts/request-bounds.ts)
 * with its JSON escaping, far above what the edge forwards.
 */
export const RUNNER_JSON_BODY_BYTES = 32 * 1024 * 1024;

export function createApp(deps: RunnerDeps): Hono {
  const app = new Hono();
  app.use(async (c, next) => {
    c.header(REQUEST_ID_HEADER, assignRequestId(c));
    await next();
  });
  app.use(bearerAuth(deps.runnerToken, deps.publicProbes ? PROBE_PATHS : []));
  // JSON bodies are read whole before they are validated: bounded here, so a huge one costs nothing past
  // the limit (adapter uploads have their own bound, checked as they stream)
  app.post(
    "*",
    bodyLimit({
      maxSize: RUNNER_JSON_BODY_BYTES,
      onError: () => {
        throw new AppError(
          "payload_too_large",
          `request body: must be <= ${RUNNER_JSON_BODY_BYTES} bytes (${RUNNER_JSON_BODY_BYTES / 1024 / 1024} MiB) on this runner`,
        );
      },
    }),
  );
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
    // a full queue (the runner's, or a tenant's share of it) drains within steps: tell clients when to retry
    if (appError.code === "queue_full") c.header("retry-after", "1");
    return c.json(publicEnvelope(appError, requestIdOf(c), error), appError.status as 400);
  });
  return app;
}
