// Each request's id (the caller's x-request-id, else a new one), kept beside the request so the error
// renderers can name it: a 5xx body says only that something failed and which request it was, and the log
// line with the same id holds the details (docs/conventions.md#errors).
import type { Context } from "hono";
import { AppError, errorEnvelope } from "../../../src/errors.ts";

// by context, not by Request: middleware such as the body limit replaces c.req.raw
const ids = new WeakMap<Context, string>();

export const REQUEST_ID_HEADER = "x-request-id";

/** Records the request's id; the first middleware calls it. */
export function assignRequestId(c: Context): string {
  const id = c.req.header(REQUEST_ID_HEADER)?.slice(0, 128) ?? crypto.randomUUID();
  ids.set(c, id);
  return id;
}

export function requestIdOf(c: Context): string {
  return ids.get(c) ?? "unknown";
}

/**
 * What the caller may read of an error. A 4xx keeps its message (the field, the rule and the value). A 5xx
 * is logged whole with the request id and answered with a fixed message per code and that id, so no
 * runner-internal text (paths, engine and onnxruntime messages) reaches a client; `unavailable` keeps its
 * message, written for callers (drain, shutdown, the slot wait), with the id added.
 */
export function publicError(error: AppError, requestId: string, cause: unknown): AppError {
  if (error.status < 500) return error;
  console.error(`runner request ${requestId} failed (${error.code}):`, cause);
  const message =
    error.code === "unavailable"
      ? `${error.message} (request id ${requestId})`
      : `the runner failed to serve this request (request id ${requestId}); its log has the details`;
  return new AppError(error.code, message);
}

export function publicEnvelope(error: AppError, requestId: string, cause: unknown) {
  return errorEnvelope(publicError(error, requestId, cause));
}
