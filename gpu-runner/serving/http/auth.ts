// RUNNER_TOKEN bearer auth: when a token is configured, every route needs it, /health and /metrics
// included, since they reveal which adapters a tenant loaded.
import type { MiddlewareHandler } from "hono";
import { timingSafeEqualString } from "../../../src/crypto.ts";
import { AppError } from "../../../src/errors.ts";

export function bearerAuth(token: string | null): MiddlewareHandler {
  return async (c, next) => {
    if (token === null) return next();
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer (.+)$/i.exec(header);
    if (!match) {
      throw new AppError("unauthorized", "missing bearer token: send Authorization: Bearer <RUNNER_TOKEN>");
    }
    if (!timingSafeEqualString(match[1] as string, token)) {
      throw new AppError("unauthorized", "bearer token does not match this runner's RUNNER_TOKEN");
    }
    return next();
  };
}
