// The per-isolate API-key cache (workers/edge/tenants/key-cache.ts): a revocation through this isolate is
// immediate, one made elsewhere (a direct D1 write stands in for another isolate) takes effect within
// KEY_CACHE_MS, and a key's expiry holds even while it is cached. Time moves with vitest's fake Date.
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { KEY_CACHE_MS } from "../../workers/edge/tenants/key-cache.ts";
import { ADMIN, call, json, newTenant } from "./support/edge.ts";

const models = (key: string) => call("GET", "/v1/models", { token: key });

async function keyId(tenant: string): Promise<string> {
  const list = await json<{ data: { id: string }[] }>(
    await call("GET", `/admin/keys?tenant=${tenant}`, { token: ADMIN }),
    200,
  );
  const id = list.data[0]?.id;
  if (id === undefined) throw new Error(`tenant ${tenant} has no key`);
  return id;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("API-key cache", () => {
  it("refuses a key revoked through this isolate on the very next request", async () => {
    const { tenant, key } = await newTenant(["infer"]);
    expect((await models(key)).status).toBe(200);
    const id = await keyId(tenant);
    await json(await call("DELETE", `/admin/keys/${id}?tenant=${tenant}`, { token: ADMIN }), 200);
    expect((await models(key)).status).toBe(401);
  });

  it("keeps serving a key revoked elsewhere for at most KEY_CACHE_MS, then refuses it", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const { tenant, key } = await newTenant(["infer"]);
    expect((await models(key)).status).toBe(200);
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE tenant = ?")
      .bind(new Date().toISOString(), tenant)
      .run();
    // Still cached: this is the documented propagation delay, not a bug.
    vi.setSystemTime(Date.now() + KEY_CACHE_MS - 500);
    expect((await models(key)).status).toBe(200);
    vi.setSystemTime(Date.now() + 1_000);
    expect((await models(key)).status).toBe(401);
  });

  it("refuses a cached key the moment it expires", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const { tenant } = await newTenant(["infer"]);
    const expiresAt = new Date(Date.now() + 2_000).toISOString();
    const created = await json<{ key: string }>(
      await call("POST", "/admin/keys", {
        token: ADMIN,
        json: { tenant, name: "short", scopes: ["infer"], expiresAt },
      }),
      201,
    );
    expect((await models(created.key)).status).toBe(200);
    vi.setSystemTime(Date.now() + 1_000);
    expect((await models(created.key)).status).toBe(200);
    vi.setSystemTime(Date.now() + 1_500);
    const res = await models(created.key);
    expect(res.status).toBe(401);
    expect((await res.json()) as unknown).toMatchObject({ error: { code: "unauthorized" } });
  });

  it("never accepts an unknown key, and accepts a key created right after it was refused", async () => {
    const { tenant } = await newTenant(["infer"]);
    expect((await models("lek_not-a-real-key")).status).toBe(401);
    const created = await json<{ key: string }>(
      await call("POST", "/admin/keys", { token: ADMIN, json: { tenant, name: "fresh", scopes: ["infer"] } }),
      201,
    );
    expect((await models(created.key)).status).toBe(200);
  });
});
