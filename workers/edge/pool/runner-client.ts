// The edge's client for the runner pool's HTTP API: OpenAI endpoints plus adapter loads, with each
// runner's secret. `fetch` is injected, so tests intercept the outbound call without patching globals. It
// reports failures as values, so the dispatcher decides about failover; runner URLs stay in logs, never in
// what a client sees (runners are named by their position in the pool).
import {
  ADAPTER_CONFIG_HEADER,
  ADAPTER_NAME_HEADER,
  encodeAdapterConfigHeader,
  ResidentAdapterListSchema,
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
  readonly runners: readonly Runner[];
  /** Runners for a routing key (adapter id or base model id), best first. */
  plan(routingKey: string): Runner[];
  /** The URL `plan` would try first. */
  pick(routingKey: string): string;
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
}

export interface ForwardInit {
  requestId: string;
  timeoutMs?: number;
  /** Aborts the upstream request, also after its first byte (a client that went away). */
  signal?: AbortSignal;
}

function toPool(options: RunnerClientOptions): PoolConfig {
  if (options.pool) return options.pool;
  return parsePoolConfig({ RUNNER_URL: options.baseUrl, RUNNER_TOKEN: options.token });
}

type LoadOutcome = { ok: true } | RunnerFailure;

class RunnerPool implements RunnerClient {
  readonly runners: readonly Runner[];
  readonly #pool: PoolConfig;
  readonly #fetch: typeof fetch;
  readonly #state: PoolState;
  readonly #now: () => number;
  readonly #bound: LoadBound;

  constructor(options: RunnerClientOptions) {
    this.#pool = toPool(options);
    this.runners = this.#pool.runners.map((r, i) => ({ ...r, index: i + 1 }));
    const signature = this.runners.map((r) => `${r.url} ${r.weight}`).join("\n");
    this.#state = options.state ?? sharedPoolState(signature);
    this.#fetch = options.fetch;
    this.#now = options.now ?? Date.now;
    this.#bound = options.loadBound ?? DEFAULT_LOAD_BOUND;
  }

  plan(routingKey: string): Runner[] {
    const t = this.#now();
    const candidates = this.runners.map((r) => {
      const s = this.#state.runner(r.url);
      const healthy = this.#state.healthy(r.url, t);
      return { ...r, inFlight: s.inFlight, healthy, resident: s.resident.has(routingKey) };
    });
    return rank(candidates, routingKey, this.#bound).map((c) => this.runners[c.index - 1] as Runner);
  }

  pick(routingKey: string): string {
    return (this.plan(routingKey)[0] as Runner).url;
  }

  forward(r: Runner, path: string, body: unknown, init: ForwardInit): Promise<Forwarded> {
    const request = {
      method: "POST",
      headers: { ...authHeaders(r, init.requestId), "content-type": "application/json" },
      body: JSON.stringify(body),
    };
    return this.#send(r, path, request, init.timeoutMs ?? this.#pool.timeoutMs, init.signal);
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
    // With one runner there is no choice to inform.
    if (this.runners.length < 2 || this.#now() - this.#state.refreshedAt < maxAgeMs) return;
    this.#state.refreshedAt = this.#now();
    await Promise.all(this.runners.map((r) => this.#readResidency(r)));
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
    const text = (await res.text()).slice(0, 500);
    console.error(`runner ${r.index} (${r.url}) refused adapter ${a.label} (${res.status}): ${text}`);
    if (res.status >= 500) return { ok: false, reason: `runner ${r.index} failed to load it` };
    throw new AppError(
      "upstream_error",
      `runner ${r.index} refused to load adapter ${a.label} (${res.status})`,
    );
  }

  /** Learns residency only: a slow listing says nothing about whether the runner can serve. */
  async #readResidency(r: Runner): Promise<void> {
    const init = { method: "GET", headers: authHeaders(r, "residency") };
    const sent = await this.#send(r, "/v1/adapters", init, 2_000);
    if (!sent.ok) return;
    const parsed = ResidentAdapterListSchema.safeParse(await sent.res.json().catch(() => null));
    if (!parsed.success) return;
    this.#state.replaceResident(
      r.url,
      parsed.data.data.map((a) => a.adapterId),
    );
  }
}

function authHeaders(r: Runner, requestId: string): Record<string, string> {
  return { authorization: `Bearer ${r.token}`, "x-request-id": requestId };
}

const loadKey = (r: Runner, adapterId: string) => `${r.url}\n${adapterId}`;

export function createRunnerClient(options: RunnerClientOptions): RunnerClient {
  return new RunnerPool(options);
}

export { PoolState };
