// The answers of the edge's limits as OpenAI gives them: the `x-ratelimit-*` trio per kind on every answer,
// and 429 with `retry-after` (which the official SDKs wait for before they retry) when a limit is reached.
import { AppError } from "../../../src/errors.ts";
import { formatReset } from "../../../src/limits/token-bucket.ts";
import type { Refusal } from "./allowance-lease.ts";
import type { LimitSnapshot } from "./limiter.ts";

export function limitHeaders(snapshot: LimitSnapshot): [string, string][] {
  const out: [string, string][] = [];
  for (const kind of ["requests", "tokens"] as const) {
    const seen = snapshot[kind];
    if (seen === null) continue;
    out.push(
      [`x-ratelimit-limit-${kind}`, String(seen.limit)],
      [`x-ratelimit-remaining-${kind}`, String(seen.remaining)],
      [`x-ratelimit-reset-${kind}`, formatReset(seen.resetMs)],
    );
  }
  return out;
}

/** Our limit headers replace any a runner sent: the runner's describe its queue, not the caller's limits. */
export function withLimitHeaders(res: Response, snapshot: LimitSnapshot | null): Response {
  if (snapshot === null) return res;
  const headers = limitHeaders(snapshot);
  if (headers.length === 0) return res;
  const out = new Response(res.body, res);
  for (const [name, value] of headers) out.headers.set(name, value);
  return out;
}

/** A refusal with the headers its answer must carry. */
export class LimitRefusal {
  readonly error: AppError;
  readonly headers: [string, string][];

  constructor(error: AppError, headers: [string, string][]) {
    this.error = error;
    this.headers = headers;
  }
}

export function rateLimitRefusal(verdict: Refusal): LimitRefusal {
  const unit = verdict.kind === "requests" ? "requests per minute (RPM)" : "tokens per minute (TPM)";
  const wait = formatReset(verdict.retryAfterMs);
  const error = new AppError(
    "rate_limit_exceeded",
    `Rate limit reached for ${unit} of ${verdict.scope}: limit ${verdict.limit}, remaining 0; try again in ${wait}`,
  );
  return new LimitRefusal(error, [
    ...limitHeaders(verdict.snapshot),
    // Whole seconds for every client; the milliseconds for the OpenAI SDKs, which read them first.
    ["retry-after", String(Math.max(1, Math.ceil(verdict.retryAfterMs / 1000)))],
    ["retry-after-ms", String(verdict.retryAfterMs)],
  ]);
}

export function quotaRefusal(
  budget: number,
  used: number,
  month: string,
  snapshot: LimitSnapshot,
): LimitRefusal {
  const error = new AppError(
    "insufficient_quota",
    `You exceeded your current quota: the tenant's monthly token budget is ${budget} and ${used} tokens were used in ${month} (UTC); ask the operator to raise monthlyTokenBudget`,
  );
  // Waiting does not help until the month turns, so clients are told not to retry (the OpenAI SDKs obey this).
  return new LimitRefusal(error, [...limitHeaders(snapshot), ["x-should-retry", "false"]]);
}
