// The closed error vocabulary (docs/conventions.md#errors). Every failure the system reports has one of
// these codes; `statusFor` maps each to HTTP in one place and has no `default`, so an unmapped code fails
// to compile.

export type ErrorCode =
  | "invalid_request"
  | "invalid_safetensors"
  | "invalid_adapter"
  | "invalid_model"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "model_not_found"
  | "adapter_not_loaded"
  | "conflict"
  | "adapter_unservable"
  | "payload_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "rate_limit_exceeded"
  | "insufficient_quota"
  | "queue_full"
  | "upstream_error"
  | "unavailable"
  | "internal_error";

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "insufficient_quota"
  | "server_error";

export function statusFor(code: ErrorCode): number {
  switch (code) {
    case "invalid_request":
    case "invalid_safetensors":
    case "invalid_adapter":
    case "invalid_model":
      return 400;
    case "unauthorized":
      return 401;
    case "forbidden":
      return 403;
    case "not_found":
    case "model_not_found":
      return 404;
    case "adapter_not_loaded":
    case "conflict":
      return 409;
    case "adapter_unservable":
      return 422;
    case "payload_too_large":
      return 413;
    case "unsupported_media_type":
      return 415;
    case "rate_limited":
    case "rate_limit_exceeded":
    case "insufficient_quota":
    case "queue_full":
      return 429;
    case "upstream_error":
      return 502;
    case "unavailable":
      return 503;
    case "internal_error":
      return 500;
  }
}

export function typeFor(code: ErrorCode): ErrorType {
  // OpenAI answers a spent quota with this type, distinct from a rate limit, and clients tell them apart by it.
  if (code === "insufficient_quota") return "insufficient_quota";
  const status = statusFor(code);
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export class AppError extends Error {
  readonly code: ErrorCode;
  /** The request field the error is about (OpenAI's `param`), when there is one. */
  readonly param: string | null;
  /** Every problem found, when several were collected before reporting (e.g. adapter validation). */
  readonly details: string[];

  constructor(
    code: ErrorCode,
    message: string,
    options: { param?: string | null; details?: string[]; cause?: unknown } = {},
  ) {
    // The cause travels for the logs; the message stays what the caller may read.
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.param = options.param ?? null;
    this.details = options.details ?? [];
  }

  get status(): number {
    return statusFor(this.code);
  }
}

/** The OpenAI error envelope: {"error": {"message", "type", "param", "code"}}. */
export function errorEnvelope(error: AppError): {
  error: { message: string; type: ErrorType; param: string | null; code: ErrorCode; details?: string[] };
} {
  return {
    error: {
      message: error.message,
      type: typeFor(error.code),
      param: error.param,
      code: error.code,
      ...(error.details.length > 0 ? { details: error.details } : {}),
    },
  };
}
