// Isolates admit limited requests from leases on the tenant's meter (limits/allowance-lease.ts): no meter
// call on the path once a lease is held, never more than the limit plus the bound of decision 0007 across
// several isolates, a key over its limit still answered 429 with retry-after and both x-ratelimit trios while
// another tenant is served, and buckets that survive the meter's eviction. Each simulated isolate is its own
// AllowanceLeases over the real TenantMeter in workerd; the meter is reached through its real binding.
import { env } from "cloudflare:workers";
import { evictDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { NO_LIMITS, type StoredRateLimits } from "../../src/contracts/limits.ts";
import { AllowanceLeases, type LeaseRequest } from "../../workers/edge/limits/allowance-lease.ts";
import { LimitExceeded, RequestMeter } from "../../workers/edge/usage/request-meter.ts";
import type { TenantMeter } from "../../workers/edge/usage/tenant-meter.ts";
import { ADMIN, BASE, call, callOpen, demoBase, json } from "./support/edge.ts";
import { chat } from "./support/experiment.ts";
import { scriptedRunner } from "./support/usage.ts";

let counter = 0;
const fresh = (prefix: string) => `${prefix}${Date.now().toString(36)}-${counter++}`;

/** The real meters, with every lease request seen (and, while `hold` is set, held) on its way. */
function watchedMeters() {
  const seen: LeaseRequest[] = [];
  const state: { hold: Promise<void> | null } = { hold: null };
  const meters = {
    getByName(name: string) {
      const real = env.TENANT_METER.getByName(name);
      return {
        lease: async (request: LeaseRequest) => {
          seen.push(request);
          if (state.hold !== null) await state.hold;
          return await real.lease(request);
        },
        record: (input: Parameters<TenantMeter["record"]>[0]) => real.record(input),
      };
    },
  } as unknown as DurableObjectNamespace<TenantMeter>;
  return { meters, seen, state };
}

function isolate(
  meters: DurableObjectNamespace<TenantMeter>,
  tenant: string,
  key: StoredRateLimits,
  background: Promise<unknown>[],
) {
  const leases = new AllowanceLeases();
  return () =>
    new RequestMeter({
      meters,
      tenant,
      keyId: "k1",
      limits: { key, tenant: NO_LIMITS, monthlyTokenBudget: null },
      waitUntil: (p) => background.push(p),
      leases,
    });
}

async function infer(key: string, model = BASE) {
  const { res, settled } = await callOpen("POST", "/v1/chat/completions", { token: key, json: chat(model) });
  const text = await res.text();
  await settled();
  return { res, text, header: (name: string) => res.headers.get(name) };
}

async function keyWith(tenant: string, limits?: Record<string, number>) {
  await json(await call("POST", "/admin/tenants", { token: ADMIN, json: { name: tenant } }), 201);
  const body = { tenant, name: "k", scopes: ["infer"], ...(limits ? { limits } : {}) };
  return (await json<{ key: string }>(await call("POST", "/admin/keys", { token: ADMIN, json: body }), 201))
    .key;
}

const TRIOS = ["requests", "tokens"].flatMap((kind) =>
  ["limit", "remaining", "reset"].map((part) => `x-ratelimit-${part}-${kind}`),
);

beforeEach(async () => {
  await demoBase();
  scriptedRunner({ promptTokens: 6, pieces: ["a", "b", "c", "d"] });
});

describe("a held lease", () => {
  it("admits without asking the meter: admissions go on while the meter is held", async () => {
    const { meters, seen, state } = watchedMeters();
    const background: Promise<unknown>[] = [];
    const meter = isolate(
      meters,
      fresh("lease"),
      { requestsPerMinute: 600, tokensPerMinute: 100_000 },
      background,
    );
    // The first request of a cold isolate waits for its grant (of one); the prefetch follows in the background.
    expect(await meter().admit()).not.toBeNull();
    expect(seen[0]?.slots.map((s) => s.want)).toEqual([1, 1]);
    expect(seen.length).toBeLessThanOrEqual(2);
    // Slices are sized by the rate they were used at: a hundred requests grow this one.
    for (let i = 0; i < 100; i++) await meter().admit();
    await Promise.all(background);
    const asked = seen.length;

    let release = () => {};
    state.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    const remaining: number[] = [];
    // Had any of these waited for the meter, it would wait forever: the meter is held until after them.
    for (let i = 0; i < 20; i++) remaining.push((await meter().admit())?.requests?.remaining ?? -1);
    expect(remaining.every((r) => r >= 0 && r < 600 - 100)).toBe(true);
    expect(remaining.at(-1) as number).toBeLessThan(remaining[0] as number);
    release();
    state.hold = null;
    await Promise.all(background);
    // At most one renewal went out meanwhile, in the background.
    expect(seen.length - asked).toBeLessThanOrEqual(1);
  });
});

describe("several isolates", () => {
  it("never admit more than the limit plus what each handed back while it kept admitting", async () => {
    const { meters, seen } = watchedMeters();
    const tenant = fresh("iso");
    const limit = 40;
    const isolates = 4;
    const background: Promise<unknown>[] = [];
    const key = { requestsPerMinute: limit, tokensPerMinute: 1_000_000 };
    const started = Date.now();
    let admitted = 0;
    let refused: LimitExceeded | null = null;
    await Promise.all(
      Array.from({ length: isolates }, async () => {
        const meter = isolate(meters, tenant, key, background);
        // Four requests at a time per isolate, 60 in all: 240 asked for a limit of 40.
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            for (let i = 0; i < 60 / 4; i++) {
              try {
                await meter().admit();
                admitted++;
              } catch (error) {
                if (!(error instanceof LimitExceeded)) throw error;
                refused = error;
              }
            }
          }),
        );
      }),
    );
    await Promise.all(background);
    const refill = Math.ceil(((Date.now() - started) * limit) / 60_000);
    const handedBack = seen
      .flatMap((r) => r.slots)
      .filter((s) => s.kind === "requests")
      .reduce((sum, s) => sum + s.give, 0);
    // The bound of decision 0007: the limit, what refilled, and allowance handed back during a renewal.
    expect(admitted).toBeLessThanOrEqual(limit + refill + handedBack);
    expect(admitted).toBeLessThanOrEqual(limit + refill + isolates * (limit / 2));
    expect(admitted).toBeGreaterThanOrEqual(limit / 2);
    expect(refused).not.toBeNull();
    const headers = Object.fromEntries((refused as unknown as LimitExceeded).headers);
    expect(headers["x-ratelimit-limit-requests"]).toBe(String(limit));
    expect(headers["x-ratelimit-remaining-requests"]).toBe("0");
    expect(headers["x-ratelimit-limit-tokens"]).toBe("1000000");
    expect(Number(headers["retry-after"])).toBeGreaterThanOrEqual(1);
  });
});

describe("answers to a limited key", () => {
  it("carry both trios on every answer, 429 with retry-after past the limit, while another tenant is served", async () => {
    const key = await keyWith(fresh("hdr"), { requestsPerMinute: 3, tokensPerMinute: 1000 });
    const missing = await infer(key, "no-such-model");
    expect(missing.res.status).toBe(404);
    for (const name of TRIOS) expect(missing.header(name), name).not.toBeNull();
    expect(missing.header("x-ratelimit-remaining-requests")).toBe("2");
    expect((await infer(key)).res.status).toBe(200);
    const last = await infer(key);
    expect(last.res.status).toBe(200);
    expect(last.header("x-ratelimit-remaining-requests")).toBe("0");
    expect(last.header("x-ratelimit-limit-tokens")).toBe("1000");

    const refused = await infer(key);
    expect(refused.res.status).toBe(429);
    expect(JSON.parse(refused.text).error.code).toBe("rate_limit_exceeded");
    for (const name of TRIOS) expect(refused.header(name), name).not.toBeNull();
    expect(Number(refused.header("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(refused.header("retry-after-ms"))).toBeGreaterThan(0);

    // Another tenant's key, with no limit at all, is served, and carries no trio: there is no limit to show.
    const other = await infer(await keyWith(fresh("free")));
    expect(other.res.status).toBe(200);
    for (const name of TRIOS) expect(other.header(name), name).toBeNull();
  });
});

describe("the meter's buckets", () => {
  it("survive its eviction: a drained key stays drained for a new isolate", async () => {
    const tenant = fresh("evict");
    const background: Promise<unknown>[] = [];
    const key = { requestsPerMinute: 2, tokensPerMinute: null };
    const first = isolate(env.TENANT_METER, tenant, key, background);
    await first().admit();
    await first().admit();
    await Promise.all(background);
    await evictDurableObject(env.TENANT_METER.getByName(tenant));
    const cold = isolate(env.TENANT_METER, tenant, key, background);
    await expect(cold().admit()).rejects.toBeInstanceOf(LimitExceeded);
    await Promise.all(background);
  });
});
