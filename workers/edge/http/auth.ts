// Bearer authentication. The bootstrap ADMIN_TOKEN (a Worker secret) makes the caller the operator, who
// manages tenants, keys and base models; every other caller is a tenant's API key with scopes.
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { Scope } from "../../../src/contracts/keys.ts";
import { sha256Hex, timingSafeEqualString } from "../../../src/crypto.ts";
import { AppError } from "../../../src/errors.ts";
import type { EdgeEnv, Principal } from "../env.ts";
import { cachedKey } from "../tenants/key-cache.ts";
import { KeyStore } from "../tenants/key-store.ts";

/** last_used_at is a hint for people, not an audit trail: one write a minute per key is plenty. */
const TOUCH_EVERY_MS = 60_000;

function bearer(header: string | undefined): string {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  if (!match?.[1]) {
    throw new AppError(
      "unauthorized",
      "Authorization: must be `Bearer <api key>`; got none or another scheme",
      {
        param: "Authorization",
      },
    );
  }
  return match[1];
}

export const authenticate = createMiddleware<EdgeEnv>(async (c, next) => {
  const token = bearer(c.req.header("authorization"));
  if (c.env.ADMIN_TOKEN && timingSafeEqualString(token, c.env.ADMIN_TOKEN)) {
    c.set("principal", { kind: "operator" });
    return await next();
  }
  const hash = await sha256Hex(token);
  const key = await cachedKey(hash, () => new KeyStore(c.env.DB).liveKey(hash));
  if (key === null) {
    throw new AppError("unauthorized", "Authorization: the API key is unknown, revoked or expired", {
      param: "Authorization",
    });
  }
  const { principal } = key;
  c.set("principal", { kind: "key", ...principal });
  const now = Date.now();
  if (principal.lastUsedAt === null || now - Date.parse(principal.lastUsedAt) > TOUCH_EVERY_MS) {
    // The principal is the cached one: marking it used keeps the next requests from writing again.
    principal.lastUsedAt = new Date(now).toISOString();
    c.executionCtx.waitUntil(new KeyStore(c.env.DB).touch(principal.keyId).catch(() => undefined));
  }
  await next();
});

export function hasScope(principal: Principal, scope: Scope): boolean {
  if (principal.kind === "operator") return false;
  // A fleet key is never implied: a tenant's admin must not be able to put a runner into every tenant's pool.
  if (scope === "runner") return principal.scopes.includes("runner");
  return principal.scopes.includes(scope) || principal.scopes.includes("admin");
}

/** The caller's tenant, when its key carries `scope` (admin implies every scope). */
export function tenantWith(c: Context<EdgeEnv>, scope: Scope): { tenant: string; actor: string } {
  const principal = c.get("principal");
  if (principal.kind === "operator") {
    throw new AppError(
      "forbidden",
      "the bootstrap admin token manages tenants, keys and base models; adapters need a tenant key",
    );
  }
  if (!hasScope(principal, scope)) {
    throw new AppError(
      "forbidden",
      `this key has scopes [${principal.scopes.join(", ")}]; this request needs scope "${scope}"`,
    );
  }
  return { tenant: principal.tenant, actor: `key:${principal.keyId}` };
}

export function requireOperator(c: Context<EdgeEnv>): void {
  if (c.get("principal").kind !== "operator") {
    throw new AppError("forbidden", "only the bootstrap admin token may do this");
  }
}

/**
 * The tenant whose keys the caller may manage: the operator names any tenant; a tenant's admin key only its
 * own, and naming another reads as forbidden without saying whether it exists.
 */
export function keyManagerFor(
  c: Context<EdgeEnv>,
  requested: string | undefined,
): { tenant: string; actor: string } {
  const principal = c.get("principal");
  if (principal.kind === "operator") {
    if (!requested) {
      throw new AppError("invalid_request", "tenant: is required with the bootstrap admin token", {
        param: "tenant",
      });
    }
    return { tenant: requested, actor: "operator" };
  }
  const own = tenantWith(c, "admin");
  if (requested !== undefined && requested !== own.tenant) {
    throw new AppError(
      "forbidden",
      `this key manages tenant ${own.tenant}; got tenant ${JSON.stringify(requested)}`,
      {
        param: "tenant",
      },
    );
  }
  return own;
}

/** Route middleware forms, so authorisation is decided before a body is parsed. */
export const operatorOnly = createMiddleware<EdgeEnv>(async (c, next) => {
  requireOperator(c);
  await next();
});

/** Key management: the operator, or a tenant key with scope admin (which tenant is checked by keyManagerFor). */
export const keyManagers = createMiddleware<EdgeEnv>(async (c, next) => {
  if (c.get("principal").kind !== "operator") tenantWith(c, "admin");
  await next();
});

export function scoped(scope: Scope) {
  return createMiddleware<EdgeEnv>(async (c, next) => {
    tenantWith(c, scope);
    await next();
  });
}
