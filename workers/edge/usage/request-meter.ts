// Metering and limits around one inference request: admission before anything else, from this isolate's
// leases on the tenant's buckets (limits/allowance-lease.ts; skipped when neither the key nor its tenant has
// a limit or budget), and one usage record per answer (the live one, and each shadow copy) sent to the meter in
// waitUntil once the answer has ended. The meter is a Durable Object (usage/tenant-meter.ts).
import { AppError } from "../../../src/errors.ts";
import { AllowanceLeases, type LeaseDeps } from "../limits/allowance-lease.ts";
import type { LimitSnapshot, LimitsInput } from "../limits/limiter.ts";
import { quotaRefusal, rateLimitRefusal } from "../limits/limit-headers.ts";
import type { AppliedLimits } from "../tenants/key-store.ts";
import type { MeteredRequest } from "./metered-request.ts";
import type { RecordInput, TenantMeter } from "./tenant-meter.ts";
import { type ClientUsage, type Counted, streamUsage, tapPlain, tapStream } from "./usage-tap.ts";

/**
 * How long an isolate gathers a tenant's records before it sends them to the meter in one call: a busy
 * isolate makes at most one meter call per tenant per window instead of one per request
 * (docs/decisions/0007-usage-metering.md).
 */
export const USAGE_BATCH_MS = 50;

type Batch = RecordInput["requests"];
interface OpenBatch {
  meters: DurableObjectNamespace<TenantMeter>;
  items: Batch;
  /** Settles when the batch's own timer has fired and the batch was sent (by it, or earlier by a flush). */
  due: Promise<void>;
  taken: boolean;
}
const open = new Map<string, OpenBatch>();

/**
 * Sends a batch from the request that calls this, once: a flush makes the meter call itself rather than
 * hurrying another request's timer, so the call's I/O belongs to the request that waits for it (workerd
 * ties I/O to the request that started it).
 */
async function send(tenant: string, batch: OpenBatch) {
  if (batch.taken) return;
  batch.taken = true;
  if (open.get(tenant) === batch) open.delete(tenant);
  const items = batch.items;
  try {
    await batch.meters.getByName(tenant).record({ tenant, requests: items });
  } catch (error) {
    // A lost batch is lost usage: loud, with what it held (docs/conventions.md#errors).
    console.error(
      `usage: the meter of tenant ${tenant} did not take ${items.length} record(s):`,
      items,
      error,
    );
  }
}

/** Adds a record to the tenant's open batch (opening one if needed); resolves when the batch was sent. */
function batched(
  meters: DurableObjectNamespace<TenantMeter>,
  tenant: string,
  item: Batch[number],
): Promise<void> {
  const current = open.get(tenant);
  if (current !== undefined) {
    current.items.push(item);
    return current.due;
  }
  const batch: OpenBatch = { meters, items: [item], due: Promise.resolve(), taken: false };
  batch.due = new Promise<void>((resolve) => setTimeout(resolve, USAGE_BATCH_MS)).then(() =>
    send(tenant, batch),
  );
  open.set(tenant, batch);
  return batch.due;
}

/**
 * Sends the tenant's open batch now, so a read of its usage, or a lease the meter grants next, sees this
 * isolate's requests.
 */
export async function sendPending(tenant: string): Promise<void> {
  const batch = open.get(tenant);
  if (batch !== undefined) await send(tenant, batch);
}

/** This isolate's leases on its tenants' buckets (limits/allowance-lease.ts). */
const isolateLeases = new AllowanceLeases();

/** A refusal by a limit or the budget, with the headers its answer carries. */
export class LimitExceeded extends Error {
  readonly error: AppError;
  readonly headers: [string, string][];

  constructor(refusal: { error: AppError; headers: [string, string][] }) {
    super(refusal.error.message);
    this.error = refusal.error;
    this.headers = refusal.headers;
  }
}

/** Which line of usage an answer belongs to: its route and variant, when a route served it. */
export interface Line {
  route: string;
  variant: string;
  shadow: boolean;
}

const NO_LINE: Line = { route: "", variant: "", shadow: false };

export interface RequestMeterInput {
  meters: DurableObjectNamespace<TenantMeter>;
  tenant: string;
  keyId: string;
  limits: AppliedLimits;
  /** ExecutionContext.waitUntil; without one (a test calling the app bare) records run unawaited. */
  waitUntil: ((promise: Promise<unknown>) => void) | undefined;
  now?: () => number;
  /** The isolate's leases; a test gives each simulated isolate its own. */
  leases?: AllowanceLeases;
}

export class RequestMeter {
  readonly #input: RequestMeterInput;
  readonly #limits: LimitsInput;
  readonly #now: () => number;
  readonly #started: number;

  constructor(input: RequestMeterInput) {
    this.#input = input;
    this.#limits = { keyId: input.keyId, key: input.limits.key, tenant: input.limits.tenant };
    this.#now = input.now ?? (() => Date.now());
    this.#started = this.#now();
  }

  #limited(): boolean {
    const { key, tenant, monthlyTokenBudget } = this.#input.limits;
    return (
      monthlyTokenBudget !== null ||
      key.requestsPerMinute !== null ||
      key.tokensPerMinute !== null ||
      tenant.requestsPerMinute !== null ||
      tenant.tokensPerMinute !== null
    );
  }

  #leaseDeps(): LeaseDeps {
    const { meters, tenant, waitUntil } = this.#input;
    return {
      lease: async (request) => await meters.getByName(tenant).lease(request),
      flush: () => sendPending(tenant),
      waitUntil,
    };
  }

  #admitInput() {
    return {
      tenant: this.#input.tenant,
      limits: this.#limits,
      monthlyTokenBudget: this.#input.limits.monthlyTokenBudget,
    };
  }

  /**
   * The limits' state for the headers (as this isolate's lease sees it), or null when none applies; throws
   * LimitExceeded on a refusal, which is metered as a 429.
   */
  async admit(): Promise<LimitSnapshot | null> {
    if (!this.#limited()) return null;
    const admission = await (this.#input.leases ?? isolateLeases).admit(
      this.#admitInput(),
      this.#leaseDeps(),
    );
    if (admission.ok) return admission.snapshot;
    this.#record({
      adapter: "",
      line: NO_LINE,
      status: 429,
      cancelled: false,
      cold: false,
      promptTokens: 0,
      completionTokens: 0,
    });
    if ("quota" in admission) {
      const q = admission.quota;
      throw new LimitExceeded(quotaRefusal(q.budget, q.used, q.month, q.snapshot));
    }
    throw new LimitExceeded(rateLimitRefusal(admission.refusal));
  }

  /** The body to send upstream: a stream asks for usage on every chunk (usage/usage-tap.ts). */
  upstreamBody(body: Record<string, unknown>): { body: Record<string, unknown>; client: ClientUsage | null } {
    const stream = streamUsage(body);
    return stream === null ? { body, client: null } : stream;
  }

  /** The answer with its tokens counted as it goes; its usage is recorded when it ends. */
  measured(
    res: Response,
    input: { adapter: string; line: Line | undefined; client: ClientUsage | null },
  ): Response {
    const cold = res.headers.get("x-adapter-cold") === "1";
    const line = input.line ?? NO_LINE;
    const record = (counted: Counted) => {
      const ok = res.status < 400;
      this.#record({
        adapter: input.adapter,
        line,
        status: counted.outcome === "failed" && res.status < 400 ? 502 : res.status,
        cancelled: counted.outcome === "cancelled",
        cold,
        promptTokens: ok ? counted.promptTokens : 0,
        completionTokens: ok ? counted.completionTokens : 0,
      });
      // After the record joined its batch: a renewal this starts sends the batch before it asks for a grant.
      if (ok && this.#limited())
        (this.#input.leases ?? isolateLeases).used(
          this.#admitInput(),
          counted.promptTokens + counted.completionTokens,
          line.shadow,
          this.#leaseDeps(),
        );
    };
    if (res.body === null) {
      record({ promptTokens: 0, completionTokens: 0, outcome: "done" });
      return res;
    }
    const sse = (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
    const body =
      sse && input.client !== null ? tapStream(res.body, input.client, record) : tapPlain(res.body, record);
    return new Response(body, res);
  }

  /** An answer that never started (the model did not resolve, no runner could serve it). */
  failed(error: unknown, input: { adapter: string; line: Line | undefined }): void {
    this.#record({
      adapter: input.adapter,
      line: input.line ?? NO_LINE,
      status: error instanceof AppError ? error.status : 500,
      cancelled: false,
      cold: false,
      promptTokens: 0,
      completionTokens: 0,
    });
  }

  #record(
    r: Omit<MeteredRequest, "keyId" | "at" | "latencyMs" | "route" | "variant" | "shadow"> & { line: Line },
  ): void {
    const request: MeteredRequest = {
      keyId: this.#input.keyId,
      adapter: r.adapter,
      route: r.line.route,
      variant: r.line.variant,
      shadow: r.line.shadow,
      status: r.status,
      cancelled: r.cancelled,
      cold: r.cold,
      promptTokens: r.promptTokens,
      completionTokens: r.completionTokens,
      latencyMs: Math.max(0, this.#now() - this.#started),
      at: this.#started,
    };
    const sent = batched(this.#input.meters, this.#input.tenant, { request, limits: this.#limits });
    if (this.#input.waitUntil !== undefined) this.#input.waitUntil(sent);
  }
}
