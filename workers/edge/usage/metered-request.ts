// One metered inference, as the edge sends it to the tenant's meter once the answer has ended.

export interface MeteredRequest {
  keyId: string;
  /** `name@version`, the base model id, or "" when `model` did not resolve. */
  adapter: string;
  /** The route (A/B experiment) and variant that served it; "" outside a route. */
  route: string;
  variant: string;
  /** A shadow copy: billed on its own line, never charged to the caller's per-minute limits. */
  shadow: boolean;
  /** The HTTP status of the answer (502 when the runner broke off a stream after it had started). */
  status: number;
  /** The client went away before the end; the tokens are those it was sent. */
  cancelled: boolean;
  /** The adapter had to be loaded onto the runner for this request. */
  cold: boolean;
  promptTokens: number;
  completionTokens: number;
  latencyMs: number;
  /** Epoch ms when the request arrived: the hour it is counted in. */
  at: number;
}

export const HOUR_MS = 3_600_000;

/** The start of the hour `at` falls in, as stored: `2026-05-01T13:00:00.000Z`. */
export function hourOf(at: number): string {
  return new Date(Math.floor(at / HOUR_MS) * HOUR_MS).toISOString();
}

/** The calendar month (UTC) a monthly budget counts in: `2026-05`. */
export function monthOf(at: number): string {
  return new Date(at).toISOString().slice(0, 7);
}
