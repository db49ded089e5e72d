// Bearer auth with the runner's key (--api-key, VLLM_API_KEY or RUNNER_TOKEN; config.ts): when one is configured, every route needs it, except the probe paths when
// --public-probes is on (vLLM's default: its API key guards /v1 only, so health checks and Prometheus
// scrapers need no secret). Those paths reveal which adapters are loaded, hence the flag to close them.
import type { MiddlewareHandler } from "hono";
import { timingSafeEqualString } from "../../../src/crypto.ts";
import { AppError } from "../../../src/errors.ts";

/** What --public-probes opens. */
export const PROBE_PATHS: readonly string[] = ["/health", "/ready", "/metrics"];

export function bearerAuth(token: string | null, publicPaths: readonly string[] = []): MiddlewareHandler {
  return async (c, next) => {
    if (token === null) return next();
    const read = c.req.method === "GET" || c.req.method === "HEAD";
    if (read && publicPaths.includes(c.req.path)) return next();
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer (.+)$/i.exec(header);
    if (!match) {
      throw new AppError(
        "unauthorized",
        "missing bearer token: send Authorization: Bearer <the runner's --api-key, VLLM_API_KEY or RUNNER_TOKEN>",
      );
    }
    if (!timingSafeEqualString(match[1] as string, token)) {
      throw new AppError(
        "unauthorized",
        "bearer token does not match this runner's key (--api-key, VLLM_API_KEY or RUNNER_TOKEN)",
      );
    }
    return next();
  };
}
