// An isolate's leases on its tenants' buckets: the tenant's meter (usage/tenant-meter.ts) grants an isolate
// a slice of each bucket a request is held to, debited there at once, and the isolate admits from its slices
// with no call on the request's path. Slices are sized by the rate the isolate used them at, last LEASE_MS,
// and are renewed in the background (waitUntil) before they run out; a renewal gives back what was not used.
// Only a request that finds no live slice (the first of an isolate, after LEASE_MS idle, after a limit
// changed) or an empty one while the meter may still have units waits for a grant. The bounds this keeps,
// and why: docs/decisions/0007-usage-metering.md. It never decides from anything but its slices.
import { AppError } from "../../../src/errors.ts";
import { type BucketView, MINUTE_MS } from "../../../src/limits/token-bucket.ts";
import { monthOf } from "../usage/metered-request.ts";
import { type LimitKind, type LimitSnapshot, type LimitsInput, type Slot, slots } from "./limiter.ts";

/** How long a grant may be admitted from: well under the buckets' minute, so limit changes apply quickly. */
export const LEASE_MS = 10_000;
/** A grant this old is renewed in the background on its next use. */
const RENEW_AGE_MS = LEASE_MS / 2;
/** The most a renewal asks for ahead of demand, as a share of the limit, so idle isolates hold little. */
const PREFETCH_SHARE = 0.25;
/** The shortest span a slice's use is averaged over when the next slice is sized. */
const RATE_FLOOR_MS = 1_000;
/** Grants a request may wait for before it is decided on what the isolate holds. */
const MAX_ROUNDS = 4;

export interface LeaseSlotRequest extends Slot {
  /** Units wanted for the next LEASE_MS. */
  want: number;
  /** Units handed back: unused requests, or the whole token reservation (tokens are charged by records). */
  give: number;
}

export interface LeaseRequest {
  tenant: string;
  slots: LeaseSlotRequest[];
}

export interface LeaseGrant {
  month: string;
  /** The tenant's tokens this month as the meter counts them, records sent before the request included. */
  monthTokens: number;
  slots: { id: string; granted: number; level: number }[];
}

export interface LeaseDeps {
  /** The tenant's meter grants slices (usage/tenant-meter.ts). */
  lease: (request: LeaseRequest) => Promise<LeaseGrant>;
  /** Sends the tenant's pending usage records first, so the meter has charged their tokens. */
  flush: () => Promise<void>;
  /** ExecutionContext.waitUntil for background renewals; without one they run unawaited. */
  waitUntil: ((promise: Promise<unknown>) => void) | undefined;
}

export type Refusal = {
  kind: LimitKind;
  scope: string;
  limit: number;
  retryAfterMs: number;
  snapshot: LimitSnapshot;
};

export type Admission =
  | { ok: true; snapshot: LimitSnapshot }
  | { ok: false; refusal: Refusal }
  | { ok: false; quota: { budget: number; used: number; month: string; snapshot: LimitSnapshot } };

export interface AdmitInput {
  tenant: string;
  limits: LimitsInput;
  monthlyTokenBudget: number | null;
}

interface Held {
  slot: Slot;
  /** Requests: units granted. Tokens: units reserved. */
  granted: number;
  /** Requests admitted, or tokens the runner reported, since the grant (more than granted: a debt). */
  consumed: number;
  /** The meter's level right after the grant; it refills from there at the limit's pace. */
  level: number;
  at: number;
  /** What the last renewal asked for: a slice in use never shrinks below it. */
  size: number;
}

interface TenantLeases {
  held: Map<string, Held>;
  quota: { month: string; tokens: number; used: number; at: number } | null;
  /** Slots requests are waiting for, with the units they need, for the next grant. */
  pending: Map<string, { slot: Slot; units: number }>;
  inFlight: Promise<void> | null;
}

type Decision = { renew: true } | Admission;

export class AllowanceLeases {
  readonly #tenants = new Map<string, TenantLeases>();
  readonly #now: () => number;

  constructor(now: () => number = () => Date.now()) {
    this.#now = now;
  }

  #of(tenant: string): TenantLeases {
    let t = this.#tenants.get(tenant);
    if (t === undefined) {
      t = { held: new Map(), quota: null, pending: new Map(), inFlight: null };
      this.#tenants.set(tenant, t);
    }
    return t;
  }

  /** Admits one request from the isolate's slices, waiting for a grant only when it must. */
  async admit(input: AdmitInput, deps: LeaseDeps): Promise<Admission> {
    const t = this.#of(input.tenant);
    for (let round = 0; ; round++) {
      const decision = this.#decide(t, input, this.#now(), round >= MAX_ROUNDS);
      if (!("renew" in decision)) {
        if (decision.ok) this.#renewIfDue(t, input, deps);
        return decision;
      }
      if (round > MAX_ROUNDS)
        throw new AppError(
          "internal_error",
          `limits: tenant ${input.tenant}'s meter granted no usable lease in ${MAX_ROUNDS} rounds`,
        );
      for (const slot of [...slots(input.limits, "requests"), ...slots(input.limits, "tokens")]) {
        const seen = t.pending.get(slot.id);
        t.pending.set(slot.id, { slot, units: (seen?.units ?? 0) + 1 });
      }
      await this.#renew(input.tenant, t, deps);
    }
  }

  /** Counts tokens the runner reported for an answer; shadows count against the budget only. */
  used(input: AdmitInput, tokens: number, shadow: boolean, deps: LeaseDeps): void {
    if (tokens <= 0) return;
    const t = this.#of(input.tenant);
    if (t.quota !== null) t.quota.used += tokens;
    if (shadow) return;
    let low = false;
    for (const slot of slots(input.limits, "tokens")) {
      const h = t.held.get(slot.id);
      if (h === undefined) continue;
      h.consumed += tokens;
      if (h.granted - h.consumed < 1) low = true;
    }
    if (low) this.#background(input.tenant, t, deps);
  }

  #decide(t: TenantLeases, input: AdmitInput, now: number, final: boolean): Decision {
    const requests = slots(input.limits, "requests");
    const tokens = slots(input.limits, "tokens");
    const all = [...requests, ...tokens];
    const budget = input.monthlyTokenBudget;
    const quota = t.quota;
    const quotaStale = quota === null || now - quota.at >= LEASE_MS || quota.month !== monthOf(now);
    if (budget !== null && quotaStale) return { renew: true };
    for (const slot of all) {
      const h = t.held.get(slot.id);
      if (h === undefined || h.slot.limit !== slot.limit || now - h.at >= LEASE_MS) return { renew: true };
    }
    if (budget !== null && quota !== null && quota.tokens + quota.used >= budget)
      return {
        ok: false,
        quota: {
          budget,
          used: quota.tokens + quota.used,
          month: quota.month,
          snapshot: this.#snapshot(t, input.limits, now),
        },
      };
    for (const slot of all) {
      const h = t.held.get(slot.id) as Held;
      const left = h.granted - h.consumed;
      if (left >= 1) continue;
      // What the meter would hold after taking this slice back: a unit or more, so a grant may admit. A
      // request that has waited for MAX_ROUNDS grants is refused, to retry at once, rather than held longer.
      const total = projected(h, now) + left;
      if (total >= 1 && !final) return { renew: true };
      return {
        ok: false,
        refusal: {
          kind: slot.kind,
          scope: slot.scope,
          limit: slot.limit,
          retryAfterMs: Math.max(1, Math.ceil(((1 - total) * MINUTE_MS) / slot.limit)),
          snapshot: this.#snapshot(t, input.limits, now),
        },
      };
    }
    for (const slot of requests) (t.held.get(slot.id) as Held).consumed += 1;
    return { ok: true, snapshot: this.#snapshot(t, input.limits, now) };
  }

  /** Per kind, the tightest of the request's slices as the meter and this isolate see it (approximate). */
  #snapshot(t: TenantLeases, limits: LimitsInput, now: number): LimitSnapshot {
    const tightest = (kind: LimitKind): BucketView | null => {
      let out: BucketView | null = null;
      for (const slot of slots(limits, kind)) {
        const h = t.held.get(slot.id);
        const total =
          h === undefined
            ? slot.limit
            : Math.max(0, Math.min(slot.limit, projected(h, now) + h.granted - h.consumed));
        const seen = {
          limit: slot.limit,
          remaining: Math.floor(total),
          resetMs: Math.ceil(((slot.limit - total) * MINUTE_MS) / slot.limit),
        };
        if (out === null || seen.remaining < out.remaining) out = seen;
      }
      return out;
    };
    return { requests: tightest("requests"), tokens: tightest("tokens") };
  }

  #renewIfDue(t: TenantLeases, input: AdmitInput, deps: LeaseDeps): void {
    const now = this.#now();
    let due = input.monthlyTokenBudget !== null && t.quota !== null && now - t.quota.at >= RENEW_AGE_MS;
    for (const slot of [...slots(input.limits, "requests"), ...slots(input.limits, "tokens")]) {
      const h = t.held.get(slot.id);
      if (h === undefined) continue;
      if (now - h.at >= RENEW_AGE_MS || h.granted - h.consumed < Math.max(1, h.granted / 2)) due = true;
    }
    if (due) this.#background(input.tenant, t, deps);
  }

  #background(tenant: string, t: TenantLeases, deps: LeaseDeps): void {
    if (t.inFlight !== null) return;
    const renewal = this.#renew(tenant, t, deps).catch((error: unknown) => {
      // The slices stay as they were; the next request that needs a grant asks again.
      console.error(`limits: renewing tenant ${tenant}'s lease failed:`, error);
    });
    deps.waitUntil?.(renewal);
  }

  /** One grant at a time per tenant: a request that needs one while another is on its way waits for both. */
  async #renew(tenant: string, t: TenantLeases, deps: LeaseDeps): Promise<void> {
    if (t.inFlight !== null) {
      await t.inFlight;
      return;
    }
    const flight = this.#grant(tenant, t, deps);
    t.inFlight = flight;
    try {
      await flight;
    } finally {
      t.inFlight = null;
    }
  }

  async #grant(tenant: string, t: TenantLeases, deps: LeaseDeps): Promise<void> {
    const now = this.#now();
    const asked: { slot: Slot; want: number; give: number; consumed: number; debt: number }[] = [];

    const ids = new Set([...t.held.keys(), ...t.pending.keys()]);
    for (const id of ids) {
      const h = t.held.get(id);
      const waiting = t.pending.get(id);
      const slot = waiting?.slot ?? (h as Held).slot;
      const consumed = h?.consumed ?? 0;
      const granted = h?.granted ?? 0;
      const age = h === undefined ? 0 : now - h.at;
      // Enough for the next LEASE_MS at the rate this slice went; an idle slice is handed back whole.
      // A burst is taken as spread over at least RATE_FLOOR_MS, so a slice grows tenfold per renewal at most.
      const rate = h === undefined ? 0 : consumed / Math.max(age, RATE_FLOOR_MS);
      const prefetch = Math.min(Math.ceil(rate * LEASE_MS), Math.ceil(slot.limit * PREFETCH_SHARE));
      const idle = waiting === undefined && consumed === 0 && age >= RENEW_AGE_MS;
      // A slice renewed for another slice's sake has seen little use since its grant: it keeps its size.
      const want = idle ? 0 : Math.max(1, waiting?.units ?? 0, prefetch, h?.size ?? 0);
      const give = slot.kind === "requests" ? Math.max(0, granted - consumed) : granted;
      const debt = slot.kind === "requests" ? Math.max(0, consumed - granted) : 0;
      asked.push({ slot, want, give, consumed, debt });
    }
    t.pending.clear();
    const quotaUsed = t.quota?.used ?? 0;
    await deps.flush();
    const grant = await deps.lease({
      tenant,
      slots: asked.map((a) => ({ ...a.slot, want: a.want, give: a.give })),
    });
    const at = this.#now();
    for (const a of asked) {
      const g = grant.slots.find((s) => s.id === a.slot.id);
      if (g === undefined) continue;
      const h = t.held.get(a.slot.id);
      // Units taken while the grant was on its way came out of the slice given back: they come out of the
      // new one. Tokens reported before the request were in the records sent first, so the meter has them.
      const since = (h?.consumed ?? 0) - a.consumed;
      const consumed = since + a.debt;
      if (a.want === 0 && g.granted === 0 && since <= 0) t.held.delete(a.slot.id);
      else
        t.held.set(a.slot.id, {
          slot: a.slot,
          granted: g.granted,
          consumed,
          level: g.level,
          at,
          size: a.want,
        });
    }
    t.quota = {
      month: grant.month,
      tokens: grant.monthTokens,
      used: (t.quota?.used ?? 0) - quotaUsed,
      at,
    };
  }
}

/** The meter's level now, from the level it reported at the grant, refilled at the limit's pace. */
function projected(h: Held, now: number): number {
  return Math.min(h.slot.limit, h.level + (Math.max(0, now - h.at) * h.slot.limit) / MINUTE_MS);
}
