// How every command reports a failure (docs/conventions.md#errors): its message and details on stderr, or
// with --json one error envelope on stdout, the same `{"error": {...}}` the HTTP API answers with; and an
// exit code that says who was at fault. Never prints a stack trace.
import type { ErrorEnvelope } from "../src/contracts/openai.ts";
import { AppError, type ErrorCode, errorEnvelope, typeFor } from "../src/errors.ts";
import { EdgeError } from "./edge-client.ts";

/** Exit codes shared by every command: usage mistakes, refusals (by the edge or the local checks), and an edge we cannot reach. */
export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

/**
 * A command-line mistake (invalid_request from the flags' own checks) is a usage error; an edge that cannot
 * be reached is unreachable; anything refused, by the edge or by the checks it shares, is a refusal.
 */
export function exitCodeFor(error: unknown): number {
  if (error instanceof EdgeError) return error.status === 0 ? EXIT.unreachable : EXIT.refused;
  if (error instanceof AppError && error.code === "invalid_request") return EXIT.usage;
  return EXIT.refused;
}

function envelope(code: ErrorCode, message: string, details: string[] = []): ErrorEnvelope {
  return {
    error: { message, type: typeFor(code), param: null, code, ...(details.length > 0 ? { details } : {}) },
  };
}

/** The error as the HTTP API would render it; an edge's own envelope is passed on as it answered. */
export function envelopeOf(error: unknown): ErrorEnvelope {
  if (error instanceof AppError) return errorEnvelope(error);
  if (error instanceof EdgeError) {
    if (error.envelope !== null) return error.envelope;
    return envelope(error.status === 0 ? "unavailable" : "upstream_error", error.message, error.details);
  }
  return envelope("internal_error", error instanceof Error ? error.message : String(error));
}

/** Prints `error` (as JSON on stdout with `json`, else on stderr) and exits with its code. */
export function reportFailure(error: unknown, json: boolean): never {
  if (json) {
    console.log(JSON.stringify(envelopeOf(error)));
  } else {
    const { message, details } = envelopeOf(error).error;
    console.error(`error: ${message}`);
    for (const detail of details !== undefined && details.length > 1 ? details : []) {
      console.error(`  - ${detail}`);
    }
  }
  process.exit(exitCodeFor(error));
}
