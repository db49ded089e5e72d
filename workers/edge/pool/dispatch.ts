// One inference request over the pool: try the runners in the order `plan` gives. A runner that cannot be
// reached, times out, or answers 5xx or 429 before its first byte hands the request to the next one
// (generation has no side effects, so a retry is safe). A runner without the adapter gets it streamed from R2
// (one load per runner and adapter at a time in this isolate) and the request is retried there once.
// A saturated runner (429, or 503 with `retry-after`) spills the request to the next rendezvous choice, so the
// adapter stays on few runners; attempts are bounded in number and in total time, and when every runner tried
// was saturated the client gets 503 with `retry-after`. Once the client is gone nothing is sent anywhere else.
import { AppError, errorEnvelope } from "../../../src/errors.ts";
import { type AdapterLoad, noRunnerFor, type Runner, type RunnerClient } from "./runner-client.ts";
import type { ServerTiming } from "./server-timing.ts";

export interface DispatchInput {
  client: RunnerClient;
  path: string;
  body: Record<string, unknown>;
  routingKey: string;
  /** The base model the request runs on: only runners serving it are tried. */
  baseModel?: string;
  /** Set when the request needs an adapter; `open` streams its weights from R2. */
  adapter: { adapterId: string; open: () => Promise<AdapterLoad> } | null;
  requestId: string;
  /** The tenant the request runs for, passed to the runner (ForwardInit.tenant). */
  tenant?: string;
  signal?: AbortSignal;
  timing: ServerTiming;
  /** Most runners tried for one request (default MAX_ATTEMPTS). */
  maxAttempts?: number;
  /** Longest time, in ms, the request may spend trying runners before its first byte (default DEADLINE_MS). */
  deadlineMs?: number;
}

/** Runners tried for one request at most: past a few, a saturated pool only gets more load from retries. */
export const MAX_ATTEMPTS = 4;
/** Total time before the first byte across attempts; each attempt also has the pool's first-byte timeout. */
export const DEADLINE_MS = 150_000;
/** Bounds on the `retry-after` the edge passes on, in seconds. */
const RETRY_AFTER_MIN_S = 1;
const RETRY_AFTER_MAX_S = 60;

export interface Dispatched {
  res: Response;
  runner: Runner | null;
  /** The adapter had to be loaded (by this request or one it waited for). */
  cold: boolean;
  /** Ends the request's in-flight count on its runner. */
  release(): void;
  /** The runner broke off its response after the first byte: route around it for a while. */
  failedMidway(): void;
}

type Attempt =
  | { kind: "done"; res: Response; cold: boolean }
  | { kind: "failed"; reason: string; res?: Response; retryAfterS?: number };

/** Queue full (429) or out of room for now (503 that says when to come back): worth the next runner. */
function saturatedFor(res: Response): number | undefined {
  const header = res.headers.get("retry-after");
  if (res.status !== 429 && !(res.status === 503 && header !== null)) return undefined;
  const seconds = Number(header);
  if (header === null || !Number.isFinite(seconds)) return RETRY_AFTER_MIN_S;
  return Math.min(RETRY_AFTER_MAX_S, Math.max(RETRY_AFTER_MIN_S, Math.ceil(seconds)));
}

function clientGone(): AppError {
  return new AppError("invalid_request", "the client closed the request");
}

function isAdapterNotLoaded(text: string): boolean {
  try {
    return (JSON.parse(text) as { error?: { code?: unknown } }).error?.code === "adapter_not_loaded";
  } catch {
    return false;
  }
}

/**
 * Worth another runner: overloaded (429), broken (5xx), or refusing this edge's token for it (401/403, a
 * fault of the pool's configuration). Other 4xx answers are about the request and would repeat.
 */
const retryable = (status: number) => status >= 500 || status === 429 || status === 401 || status === 403;
const runnerFault = (status: number) => status !== 429;

async function forward(input: DispatchInput, runner: Runner, deadline: number) {
  if (input.signal?.aborted) throw clientGone();
  const started = performance.now();
  const sent = await input.client.forward(runner, input.path, input.body, {
    requestId: input.requestId,
    tenant: input.tenant,
    signal: input.signal,
    deadline,
  });
  return { sent, ms: performance.now() - started };
}

async function attempt(input: DispatchInput, runner: Runner, deadline: number): Promise<Attempt> {
  const { client, adapter, timing } = input;
  let cold = false;
  const pending = adapter === null ? null : client.pendingLoad(runner, adapter.adapterId);
  if (pending !== null) {
    cold = true;
    await timing.time("queue", () => pending.catch(() => undefined));
  }
  let { sent, ms } = await forward(input, runner, deadline);
  if (sent.ok && adapter !== null && sent.res.status === 409) {
    const text = await sent.res.text();
    if (!isAdapterNotLoaded(text)) return { kind: "done", res: new Response(text, sent.res), cold };
    client.noteResident(runner, adapter.adapterId, false);
    // The round trip that found the adapter missing is part of the cold start.
    timing.add("load", ms);
    const loaded = await timing.time("load", () =>
      client.loadAdapter(runner, adapter.adapterId, adapter.open, input.requestId),
    );
    if (!loaded.ok) {
      client.noteFailed(runner);
      return { kind: "failed", reason: loaded.reason };
    }
    cold = true;
    ({ sent, ms } = await forward(input, runner, deadline));
  }
  if (!sent.ok) {
    client.noteFailed(runner);
    return { kind: "failed", reason: sent.reason };
  }
  const { res } = sent;
  if (retryable(res.status)) {
    if (runnerFault(res.status)) client.noteFailed(runner);
    const text = await res.text();
    console.error(`runner ${runner.index} answered ${res.status}: ${text.slice(0, 300)}`);
    const retryAfterS = saturatedFor(res);
    return {
      kind: "failed",
      reason: `runner ${runner.index} answered ${res.status}`,
      res: new Response(text, res),
      ...(retryAfterS === undefined ? {} : { retryAfterS }),
    };
  }
  client.noteHealthy(runner);
  if (adapter !== null && res.ok) client.noteResident(runner, adapter.adapterId, true);
  timing.add("ttft", ms);
  return { kind: "done", res, cold };
}

export async function dispatch(input: DispatchInput): Promise<Dispatched> {
  const { client } = input;
  const reasons: string[] = [];
  let last: Response | undefined;
  await client.sync();
  const plan = client.plan(input.routingKey, input.baseModel);
  if (plan.length === 0) throw noRunnerFor(input.baseModel);
  const deadline = Date.now() + (input.deadlineMs ?? DEADLINE_MS);
  const tries = plan.slice(0, input.maxAttempts ?? MAX_ATTEMPTS);
  // The shortest wait a saturated runner asked for; stays undefined once a runner failed otherwise.
  let saturated: { retryAfterS: number } | undefined | null;
  for (const runner of tries) {
    if (input.signal?.aborted) throw clientGone();
    if (Date.now() >= deadline) {
      reasons.push(`no runner answered within ${input.deadlineMs ?? DEADLINE_MS} ms`);
      break;
    }
    const release = client.track(runner);
    const started = performance.now();
    let outcome: Attempt;
    try {
      outcome = await attempt(input, runner, deadline);
    } catch (error) {
      release();
      throw error;
    }
    if (outcome.kind === "done") {
      const failedMidway = () => {
        console.error(`runner ${runner.index} (${runner.url}) broke off a response`);
        client.noteFailed(runner);
      };
      return { res: outcome.res, runner, cold: outcome.cold, release, failedMidway };
    }
    release();
    // Time lost on a runner that failed is time the request waited at the edge.
    input.timing.add("queue", performance.now() - started);
    reasons.push(outcome.reason);
    last = outcome.res ?? last;
    if (outcome.retryAfterS === undefined) saturated = null;
    else if (saturated !== null) {
      saturated = { retryAfterS: Math.min(saturated?.retryAfterS ?? RETRY_AFTER_MAX_S, outcome.retryAfterS) };
    }
  }
  if (input.signal?.aborted) throw clientGone();
  // Every runner tried was saturated: the pool is full for now, which is the edge's 503, not one runner's 429.
  if (saturated !== undefined && saturated !== null) {
    const error = new AppError(
      "unavailable",
      `every runner tried is at capacity (${reasons.join("; ")}); retry after ${saturated.retryAfterS} s`,
    );
    const res = Response.json(errorEnvelope(error), {
      status: 503,
      headers: { "retry-after": String(saturated.retryAfterS) },
    });
    return { res, runner: null, cold: false, release: () => {}, failedMidway: () => {} };
  }
  // Every runner refused with another status: its answer says more than a generic 503.
  if (last !== undefined) {
    return { res: last, runner: null, cold: false, release: () => {}, failedMidway: () => {} };
  }
  throw new AppError("unavailable", `no runner could serve the request: ${reasons.join("; ")}`);
}
