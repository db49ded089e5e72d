// The edge's client for the runner pool's HTTP API: OpenAI endpoints plus adapter loads, with each
// runner's secret. `fetch` is injected, so tests intercept the outbound call without patching globals. It
// reports failures as values, so the dispatcher decides about failover; runner URLs stay in logs, never in
// what a client sees (runners are named by their position in the pool).

import { z } from "zod";
import {
  ADAPTER_CONFIG_HEADER,
  ADAPTER_NAME_HEADER,
  encodeAdapterConfigHeader,
  ResidentAdapterListSchema,
  TENANT_HEADER,
  RunnerHealthSchema,
  WEIGHTS_SHA256_HEADER,
} from "../../../src/contracts/runner.ts";
import { AppError } from "../../../src/errors.ts";
import { type PoolConfig, parsePoolConfig, type RunnerEndpoint } from "./pool-config.ts";
import { PoolState, sharedPoolState } from "./pool-state.ts";
import { DEFAULT_LOAD_BOUND, type LoadBound, rank } from "./rendezvous.ts";

export interface RunnerClientOptions {
  /** The pool; or the legacy pair below (one URL or several separated by commas, one token). */
  pool?: PoolConfig;
  baseUrl?: string;
  token?: string;
  fetch: typeof fetch;
  /**
   * Fleet members that are not draining (workers/edge/fleet/), read by `sync()` after the static runners;
   * absent: the pool is the configuration alone.
   */
  members?: () => Promise<readonly RunnerEndpoint[]>;
  /** Defaults to the isolate's shared state for this pool. */
  state?: PoolState;
  loadBound?: LoadBound;
  now?: () => number;
}

export interface AdapterLoad {
  adapterId: string;
  /** `name@version`, for the runner's logs and listings. */
  label: string;
  config: Record<string, unknown>;
  weightsSha256: string;
  weights: ReadableStream;
  sizeBytes: number;
}

export interface Runner extends RunnerEndpoint {
  /** 1-based position in the pool: how errors and logs meant for clients name it. */
  index: number;
}

/** A failure before the runner's first byte: the request may move to another runner. */
export interface RunnerFailure {
  ok: false;
  reason: string;
}

export type Forwarded = { ok: true; res: Response } | RunnerFailure;

export interface RunnerClient {
  /** The static runners, then the members `sync` last read. */
  readonly runners: readonly Runner[];
  /**
   * The pool reads fleet members (the edge's own wiring always does): it also pushes versions before their
   * first request (workers/edge/fleet/warm.ts). A client over configuration alone only forwards.
   */
  readonly fleet: boolean;
  /** Reads the fleet's members (through the isolate's cache); a no-op for a pool without a fleet. */
  sync(): Promise<void>;
  /**
   * Runners for a routing key (adapter id or base model id), best first; with `baseModel`, only runners
   * serving it (static entries that name no base serve any).
   */
  plan(routingKey: string, baseModel?: string): Runner[];
  /** The URL `plan` would try first. */
  pick(routingKey: string, baseModel?: string): string;
  forward(runner: Runner, path: string, body: unknown, init: ForwardInit): Promise<Forwarded>;
  /**
   * Loads an adapter into a runner; concurrent calls for the same runner and adapter share one load, and
   * `open` (which opens the weights' stream) runs only for the first. `joined` says a load was already under way.
   */
  loadAdapter(
    runner: Runner,
    adapterId: string,
    open: () => Promise<AdapterLoad>,
    requestId: string,
  ): Promise<{ ok: true; joined: boolean } | RunnerFailure>;
  /** Waits for a load of this adapter into this runner that is already under way, if any. */
  pendingLoad(runner: Runner, adapterId: string): Promise<unknown> | null;
  /** Counts a request in flight on a runner (for the load bound) until the returned function is called. */
  track(runner: Runner): () => void;
  noteResident(runner: Runner, adapterId: string, resident: boolean): void;
  noteFailed(runner: Runner): void;
  noteHealthy(runner: Runner): void;
  /** Re-reads every runner's resident adapters when the last reading is older than `maxAgeMs`. */
  refresh(maxAgeMs: number): Promise<void>;
  /** What a runner's `/health` says it serves (model, widest rank); null when it gives no usable answer. */
  limits(runner: Runner): Promise<{ model: string; maxRank: number } | null>;
}

export interface ForwardInit {
  requestId: string;
  /** The tenant the request runs for: the runner schedules tenants fairly by it (TENANT_HEADER). */
  tenant?: string;
  timeoutMs?: number;
  /** Aborts the upstream request, also after its first byte (a client that went away). */
  signal?: AbortSignal;
  /** Epoch ms past which no first byte is awaited, whatever the pool's timeout (the dispatch's deadline). */
  deadline?: number;
}

function toPool(options: RunnerClientOptions): PoolConfig {
  if (options.pool) return options.pool;
  return parsePoolConfig({ RUNNER_URL: options.baseUrl, RUNNER_TOKEN: options.token });
}

type LoadOutcome = { ok: true } | RunnerFailure;

/** One state per isolate for every fleet pool: members come and go, their counters must not reset. */
const FLEET_STATE = "fleet";

class RunnerPool implements RunnerClient {
  #runners: readonly Runner[];
  readonly #static: readonly Runner[];
  readonly #members: (() => Promise<readonly RunnerEndpoint[]>) | undefined;
  readonly #pool: PoolConfig;
  readonly #fetch: typeof fetch;
  readonly #state: PoolState;
  readonly #now: () => number;
  readonly #bound: LoadBound;

  constructor(options: RunnerClientOptions) {
    this.#pool = toPool(options);
    this.#static = this.#pool.runners.map((r, i) => ({ ...r, index: i + 1 }));
    this.#runners = this.#static;
    this.#members = options.members;
    const signature = this.#static.map((r) => `${r.url} ${r.weight}`).join("\n");
    this.#state = options.state ?? sharedPoolState(options.members === undefined ? signature : FLEET_STATE);
    this.#fetch = options.fetch;
    this.#now = options.now ?? Date.now;
    this.#bound = options.loadBound ?? DEFAULT_LOAD_BOUND;
  }

  get fleet(): boolean {
    return this.#members !== undefined;
  }

  get runners(): readonly Runner[] {
    return this.#runners;
  }

  async sync(): Promise<void> {
    if (this.#members === undefined) return;
    const members = await this.#members();
    const urls = new Set(this.#static.map((r) => r.url));
    // A member at a static runner's address is that runner: the static entry (and its token) wins.
    const joined = members.filter((m) => !urls.has(m.url));
    this.#runners = [
      ...this.#static,
      ...joined.map((m, i) => ({ ...m, index: this.#static.length + i + 1 })),
    ];
  }

  plan(routingKey: string, baseModel?: string): Runner[] {
    const t = this.#now();
    const serving = this.#runners.filter(
      (r) => baseModel === undefined || r.baseModel === undefined || r.baseModel === baseModel,
    );
    const candidates = serving.map((r) => {
      const s = this.#state.runner(r.url);
      const healthy = this.#state.healthy(r.url, t);
      return { ...r, inFlight: s.inFlight, healthy, resident: s.resident.has(routingKey) };
    });
    return rank(candidates, routingKey, this.#bound).map((c) => this.#runners[c.index - 1] as Runner);
  }

  pick(routingKey: string, baseModel?: string): string {
    const first = this.plan(routingKey, baseModel)[0];
    if (first === undefined) throw noRunnerFor(baseModel);
    return first.url;
  }

  forward(r: Runner, path: string, body: unknown, init: ForwardInit): Promise<Forwarded> {
    const request = {
      method: "POST",
      headers: {
        ...authHeaders(r, init.requestId),
        "content-type": "application/json",
        ...(init.tenant === undefined ? {} : { [TENANT_HEADER]: init.tenant }),
      },
      body: JSON.stringify(body),
    };
    const timeout = init.timeoutMs ?? this.#pool.timeoutMs;
    const left = init.deadline === undefined ? timeout : Math.max(1, init.deadline - Date.now());
    return this.#send(r, path, request, Math.min(timeout, left), init.signal);
  }

  async loadAdapter(
    r: Runner,
    adapterId: string,
    open: () => Promise<AdapterLoad>,
    requestId: string,
  ): Promise<{ ok: true; joined: boolean } | RunnerFailure> {
    const key = loadKey(r, adapterId);
    const pending = this.#state.loads.get(key) as Promise<LoadOutcome> | undefined;
    if (pending !== undefined) {
      const outcome = await pending;
      return outcome.ok ? { ok: true, joined: true } : outcome;
    }
    const started = this.#load(r, open, requestId);
    this.#state.loads.set(key, started);
    try {
      const outcome = await started;
      return outcome.ok ? { ok: true, joined: false } : outcome;
    } finally {
      this.#state.loads.delete(key);
    }
  }

  pendingLoad(r: Runner, adapterId: string): Promise<unknown> | null {
    return this.#state.loads.get(loadKey(r, adapterId)) ?? null;
  }

  track(r: Runner): () => void {
    const s = this.#state.runner(r.url);
    s.inFlight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      s.inFlight--;
    };
  }

  noteResident(r: Runner, adapterId: string, resident: boolean): void {
    this.#state.setResident(r.url, adapterId, resident);
  }

  noteFailed(r: Runner): void {
    this.#state.failed(r.url, this.#now());
  }

  noteHealthy(r: Runner): void {
    this.#state.succeeded(r.url);
  }

  async refresh(maxAgeMs: number): Promise<void> {
    await this.sync();
    // With one runner there is no choice to inform.
    if (this.#runners.length < 2 || this.#now() - this.#state.refreshedAt < maxAgeMs) return;
    this.#state.refreshedAt = this.#now();
    await Promise.all(this.#runners.map((r) => this.#readResidency(r)));
  }

  async #send(
    r: Runner,
    path: string,
    init: RequestInit,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Forwarded> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error("first-byte timeout")), timeoutMs);
    signal?.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
    try {
      const res = await this.#fetch(`${r.url}${path}`, { ...init, signal: controller.signal });
      return { ok: true, res };
    } catch (error) {
      if (signal?.aborted) throw new AppError("invalid_request", "the client closed the request");
      const why = controller.signal.aborted ? `no answer within ${timeoutMs} ms` : (error as Error).message;
      console.error(`runner ${r.index} (${r.url}) ${path}: ${why}`);
      return { ok: false, reason: `runner ${r.index} did not answer` };
    } finally {
      clearTimeout(timer);
    }
  }

  async #load(r: Runner, open: () => Promise<AdapterLoad>, requestId: string): Promise<LoadOutcome> {
    const a = await open();
    const sent = await this.#send(
      r,
      `/v1/adapters/${a.adapterId}`,
      {
        method: "PUT",
        headers: {
          ...authHeaders(r, requestId),
          "content-type": "application/octet-stream",
          "content-length": String(a.sizeBytes),
          [ADAPTER_CONFIG_HEADER]: encodeAdapterConfigHeader(a.config),
          [WEIGHTS_SHA256_HEADER]: a.weightsSha256,
          [ADAPTER_NAME_HEADER]: a.label,
        },
        body: a.weights,
      },
      this.#pool.timeoutMs,
    );
    if (!sent.ok) return sent;
    const { res } = sent;
    if (res.ok) {
      await res.body?.cancel();
      return { ok: true };
    }
    const text = (await res.text()).slice(0, 4096);
    console.error(
      `runner ${r.index} (${r.url}) refused adapter ${a.label} (${res.status}): ${text.slice(0, 500)}`,
    );
    if (res.status >= 500) return { ok: false, reason: `runner ${r.index} failed to load it` };
    const refusal = weightsRefusal(res.status, text);
    if (refusal !== null) {
      throw new AppError(
        "adapter_unservable",
        `${a.label} cannot be served: runner ${r.index} refused its weights: ${refusal}`,
        { param: "model" },
      );
    }
    throw new AppError(
      "upstream_error",
      `runner ${r.index} refused to load adapter ${a.label} (${res.status})`,
    );
  }

  async limits(r: Runner): Promise<{ model: string; maxRank: number } | null> {
    const init = { method: "GET", headers: authHeaders(r, "limits") };
    const sent = await this.#send(r, "/health", init, 2_000);
    if (!sent.ok) return null;
    // Loose: a runner a release ahead adds fields; these two are what the agreement needs.
    const parsed = HealthLimitsSchema.safeParse(await sent.res.json().catch(() => null));
    return parsed.success ? parsed.data : null;
  }

  /** Learns residency only: a slow listing says nothing about whether the runner can serve. */
  async #readResidency(r: Runner): Promise<void> {
    const init = { method: "GET", headers: authHeaders(r, "residency") };
    const sent = await this.#send(r, "/v1/adapters", init, 2_000);
    if (!sent.ok) return;
    const parsed = ResidentAdapterListSchema.safeParse(await sent.res.json().catch(() => null));
    if (!parsed.success) return;
    // An adapter in the host tier refills a slot without the edge, so it counts as held there too.
    const held = new Set(parsed.data.data.map((a) => a.adapterId));
    for (const a of parsed.data.host?.data ?? []) held.add(a.adapterId);
    this.#state.replaceResident(r.url, [...held]);
  }
}

/** Codes of a runner's answer to a PUT that are about the weights themselves, not the request or the pool. */
const WEIGHTS_REFUSALS = new Set(["invalid_adapter", "invalid_safetensors", "payload_too_large"]);
// Loose: the runner's envelope (src/errors.ts); only these fields are read.
const RefusalSchema = z.looseObject({
  error: z.looseObject({
    code: z.string(),
    message: z.string(),
    details: z.array(z.string()).catch([]).default([]),
  }),
});
/** Longest runner reason kept on a version and shown to callers. */
export const MAX_REFUSAL_CHARS = 500;

/**
 * The runner's reason for refusing an adapter's weights, made safe to store and show: its envelope's message
 * (and details), control characters and URLs removed, at most MAX_REFUSAL_CHARS. Null when the answer is not
 * a refusal of the weights (credentials, a busy runner, a malformed request are not the version's fault).
 */
export function weightsRefusal(status: number, text: string): string | null {
  if (status !== 400 && status !== 413 && status !== 422) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = RefusalSchema.safeParse(raw);
  if (!parsed.success || !WEIGHTS_REFUSALS.has(parsed.data.error.code)) return null;
  const { message, details } = parsed.data.error;
  const joined = details.length > 0 ? `${message} (${details.join("; ")})` : message;
  const clean = joined
    .replace(/https?:\/\/\S+/g, "[address]")
    .replace(/\p{Cc}+/gu, " ")
    .replace(/\s+/g, " ")
    .trim();
  return clean.length > MAX_REFUSAL_CHARS ? `${clean.slice(0, MAX_REFUSAL_CHARS - 1)}…` : clean;
}

export function noRunnerFor(baseModel: string | undefined): AppError {
  return new AppError(
    "unavailable",
    baseModel === undefined
      ? "the runner pool is empty: set RUNNER_URL or RUNNERS, or let runners join (README, Runner fleets)"
      : `no runner serves base model ${JSON.stringify(baseModel)} now (none configured or joined for it)`,
  );
}

const HealthLimitsSchema = z.looseObject({
  model: RunnerHealthSchema.shape.model,
  maxRank: RunnerHealthSchema.shape.maxRank,
});

function authHeaders(r: Runner, requestId: string): Record<string, string> {
  return { authorization: `Bearer ${r.token}`, "x-request-id": requestId };
}

const loadKey = (r: Runner, adapterId: string) => `${r.url}\n${adapterId}`;

export function createRunnerClient(options: RunnerClientOptions): RunnerClient {
  return new RunnerPool(options);
}

export { PoolState };
