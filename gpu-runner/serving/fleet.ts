// A runner's side of the fleet (README, "Runner fleets"): join the edge with a fleet key, heartbeat to keep the
// lease, and drain: stop taking new requests, finish the running ones, deregister, exit. Drain starts on
// SIGTERM or when a heartbeat answers that the operator asked for it. The vLLM sidecar (scripts/vllm-sidecar.ts)
// uses the same two parts. Nothing here reads process.env or the clock's globals where a parameter would do.

import { LINEAR_KINDS } from "../../src/contracts/base-model.ts";
import {
  type HeartbeatRequest,
  HeartbeatResponseSchema,
  type JoinRequest,
  JoinResponseSchema,
} from "../../src/contracts/fleet.ts";
import { AppError, errorEnvelope } from "../../src/errors.ts";
import type { RunnerDeps } from "./http/deps.ts";

type Handler = (request: Request) => Response | Promise<Response>;

/** Reads and probes keep answering while draining: the console, the edge and orchestrators still look. */
const READS = new Set(["GET", "HEAD"]);

/**
 * Counts requests until their response body has ended and, once draining, refuses new work with 503, which
 * the edge treats as "try the next runner" before the first byte (workers/edge/pool/dispatch.ts).
 */
export class DrainGate {
  #inFlight = 0;
  #draining = false;
  #idle: (() => void)[] = [];

  get inFlight(): number {
    return this.#inFlight;
  }

  get draining(): boolean {
    return this.#draining;
  }

  drain(): void {
    this.#draining = true;
  }

  /** Resolves once nothing is in flight (at once if nothing is). */
  idle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #done(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  wrap(handler: Handler): Handler {
    return async (request) => {
      // Reads are neither refused nor waited for: a drain waits for generation and loads, not for probes.
      if (READS.has(request.method)) return await handler(request);
      if (this.#draining) {
        const error = new AppError(
          "unavailable",
          "this runner is draining: send the request to another runner",
        );
        return Response.json(errorEnvelope(error), { status: 503, headers: { "retry-after": "1" } });
      }
      this.#inFlight++;
      let res: Response;
      try {
        res = await handler(request);
      } catch (error) {
        this.#done();
        throw error;
      }
      if (res.body === null) {
        this.#done();
        return res;
      }
      // A streamed answer is in flight until its last byte went out (or the client went away).
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        this.#done();
      };
      const reader = res.body.getReader();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const chunk = await reader.read();
            if (chunk.done) {
              controller.close();
              end();
            } else controller.enqueue(chunk.value);
          } catch (error) {
            end();
            controller.error(error);
          }
        },
        async cancel(reason) {
          end();
          await reader.cancel(reason);
        },
      });
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    };
  }
}

export interface FleetMemberOptions {
  /** The edge's base URL. */
  edgeUrl: string;
  /** The fleet key (scope `runner`). */
  token: string;
  info: JoinRequest;
  /** What each heartbeat reports. */
  report(): Omit<HeartbeatRequest, "draining">;
  /** Called once when the edge answers that the operator asked this member to drain. */
  onDrainRequested(): void;
  fetch?: typeof fetch;
  log?: (line: string) => void;
  /** Wait before trying again after a failed join (ms). */
  retryMs?: number;
}

/** Membership: join (retrying until the edge answers), heartbeat, announce draining, leave. */
export class FleetMember {
  readonly #o: FleetMemberOptions;
  readonly #fetch: typeof fetch;
  #id: string | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #heartbeatMs = 5_000;
  #draining = false;
  #stopped = false;
  #drainAsked = false;

  constructor(options: FleetMemberOptions) {
    this.#o = options;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  get id(): string | null {
    return this.#id;
  }

  #log(line: string): void {
    (this.#o.log ?? console.log)(`fleet: ${line}`);
  }

  async #call(method: string, path: string, body?: unknown): Promise<Response> {
    return await this.#fetch(`${this.#o.edgeUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.#o.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
  }

  /** Joins; resolves once the edge accepted (it retries while the edge is down or refuses for now). */
  async join(): Promise<string> {
    for (;;) {
      if (this.#stopped) throw new AppError("unavailable", "the member stopped before it joined");
      try {
        const res = await this.#call("POST", "/admin/runners", this.#o.info);
        const text = await res.text();
        if (res.status === 201) {
          const joined = JoinResponseSchema.parse(JSON.parse(text));
          this.#id = joined.id;
          this.#heartbeatMs = joined.heartbeatMs;
          this.#log(`joined ${this.#o.edgeUrl} as ${joined.id} (lease ${joined.leaseMs} ms)`);
          this.#schedule();
          return joined.id;
        }
        // 4xx other than 429 will not change by retrying: the key or the description is wrong.
        if (res.status >= 400 && res.status < 500 && res.status !== 429) {
          throw new AppError(
            "invalid_request",
            `the edge refused to let this runner join (${res.status}): ${text}`,
          );
        }
        this.#log(`join answered ${res.status}; trying again`);
      } catch (error) {
        if (error instanceof AppError) throw error;
        this.#log(`join failed (${(error as Error).message}); trying again`);
      }
      await new Promise((r) => setTimeout(r, this.#o.retryMs ?? 1_000));
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.beat(), this.#heartbeatMs);
    this.#timer.unref?.();
  }

  /** One heartbeat; a lease the edge no longer knows (404) joins again. */
  async beat(): Promise<void> {
    if (this.#id === null || this.#stopped) return;
    try {
      const res = await this.#call("PUT", `/admin/runners/${this.#id}/heartbeat`, {
        ...this.#o.report(),
        draining: this.#draining,
      } satisfies HeartbeatRequest);
      const text = await res.text();
      if (res.status === 404 && !this.#draining) {
        this.#log("the edge no longer knows this member (lease lapsed); joining again");
        this.#id = null;
        void this.join().catch((error: unknown) => this.#log((error as Error).message));
        return;
      }
      if (res.ok) {
        const answer = HeartbeatResponseSchema.parse(JSON.parse(text));
        if (answer.drain && !this.#drainAsked && !this.#draining) {
          this.#drainAsked = true;
          this.#log("the edge asked this member to drain");
          this.#o.onDrainRequested();
        }
      } else this.#log(`heartbeat answered ${res.status}: ${text.slice(0, 200)}`);
    } catch (error) {
      this.#log(`heartbeat failed (${(error as Error).message})`);
    }
    this.#schedule();
  }

  /** Tells the edge at once that this member takes no new requests (it routes around it from then). */
  async announceDraining(): Promise<void> {
    this.#draining = true;
    await this.beat();
  }

  /** Stops heartbeating and deregisters; the lease would lapse anyway, this makes it immediate. */
  async leave(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#id === null) return;
    try {
      const res = await this.#call("DELETE", `/admin/runners/${this.#id}`);
      await res.body?.cancel();
      this.#log(`left the fleet (${res.status})`);
    } catch (error) {
      this.#log(`leaving failed (${(error as Error).message}); the lease lapses on its own`);
    }
  }
}

export interface DrainPlan {
  gate: DrainGate;
  member: FleetMember | null;
  /** Closes the listener and frees the engine. */
  close(): Promise<void>;
  log?: (line: string) => void;
  now?: () => number;
}

/**
 * Drains once, however often it is asked: refuse new work, announce it, wait for the running requests, leave,
 * close. Resolves with how long the wait for running requests took (ms).
 */
export function drainer(plan: DrainPlan): () => Promise<number> {
  let running: Promise<number> | null = null;
  const now = plan.now ?? (() => performance.now());
  return () => {
    running ??= (async () => {
      const started = now();
      plan.gate.drain();
      (plan.log ?? console.log)(`draining: ${plan.gate.inFlight} request(s) in flight`);
      await plan.member?.announceDraining();
      await plan.gate.idle();
      const waited = now() - started;
      await plan.member?.leave();
      await plan.close();
      (plan.log ?? console.log)(`drained in ${Math.round(waited)} ms`);
      return waited;
    })();
    return running;
  };
}

/** The runner's own description and heartbeat report, from the parts it was built of. */
export function runnerMembership(
  deps: Pick<
    RunnerDeps,
    "modelId" | "baseModelFingerprint" | "engine" | "adapters" | "metrics" | "scheduler" | "version"
  >,
  options: { url: string; capacity: number; gate: DrainGate },
): { info: JoinRequest; report: () => Omit<HeartbeatRequest, "draining"> } {
  return {
    info: {
      url: options.url,
      kind: "runner",
      baseModel: deps.modelId,
      baseModelFingerprint: deps.baseModelFingerprint,
      capacity: options.capacity,
      maxLoraRank: deps.engine.maxRank,
      // the engine adapts every linear kind of the families it serves
      targetModules: [...LINEAR_KINDS],
      slots: deps.engine.maxSlots,
      context: deps.engine.info.maxPositions,
      version: deps.version,
    },
    report: () => ({
      inFlight: options.gate.inFlight,
      queueDepth: deps.scheduler.queueDepth,
      resident: deps.adapters.list().map((a) => ({
        adapterId: a.adapterId,
        requests: deps.metrics.requests.get({ adapter_id: a.adapterId }),
      })),
    }),
  };
}
