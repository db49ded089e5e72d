// One mapping from whatever a handler threw to our error vocabulary, for the edge and the runner alike
// (docs/conventions.md#errors): AppErrors pass, Hono's own refusals are the caller's mistakes, anything else is
// a fault whose text stays in the log.
import { HTTPException } from "hono/http-exception";
import { AppError } from "../errors.ts";

export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof HTTPException && error.status < 500) {
    // Hono raises these for bodies it cannot parse and for bodies over a limit.
    const code = error.status === 413 ? "payload_too_large" : "invalid_request";
    return new AppError(code, `request body: ${error.message || "cannot be parsed"}`, { cause: error });
  }
  return new AppError("internal_error", "internal error; see the service's log", { cause: error });
}
