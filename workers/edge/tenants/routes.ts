// Tenants and API keys. The operator (bootstrap token) creates tenants and keys for any tenant; a tenant's
// admin key manages its own keys only.
import { Hono } from "hono";
import { z } from "zod";
import { CreateTenantRequestSchema, decimalIntegerText } from "../../../src/contracts/admin.ts";
import { CreateApiKeyRequestSchema } from "../../../src/contracts/keys.ts";
import { UpdateApiKeyRequestSchema, UpdateTenantRequestSchema } from "../../../src/contracts/limits.ts";
import { TenantNameSchema } from "../../../src/contracts/names.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import { audit, auditTrail } from "../common/audit.ts";
import type { EdgeEnv } from "../env.ts";
import { keyManagerFor, keyManagers, operatorOnly, scoped, tenantWith } from "../http/auth.ts";
import { KeyStore } from "./key-store.ts";

export const tenantRoutes = new Hono<EdgeEnv>()
  .post("/tenants", operatorOnly, validate("json", CreateTenantRequestSchema), async (c) => {
    const body = c.req.valid("json");
    const tenant = await new KeyStore(c.env.DB).createTenant(body);
    await audit(c.env.DB, {
      tenant: body.name,
      actor: "operator",
      action: "tenant_create",
      target: body.name,
      details: { limits: tenant.limits, monthlyTokenBudget: tenant.monthlyTokenBudget },
    }).run();
    return c.json(tenant, 201);
  })
  // A tenant's admins may read their own limits and budget; only the operator may change them, or a tenant
  // could lift the limits that protect the others on the same runners.
  .get("/tenants/:name", keyManagers, async (c) => {
    const { tenant } = keyManagerFor(c, c.req.param("name"));
    return c.json(await new KeyStore(c.env.DB).tenant(tenant));
  })
  .patch("/tenants/:name", operatorOnly, validate("json", UpdateTenantRequestSchema), async (c) => {
    const name = c.req.param("name");
    const body = c.req.valid("json");
    const updated = await new KeyStore(c.env.DB).updateTenant(name, body);
    await audit(c.env.DB, {
      tenant: name,
      actor: "operator",
      action: "tenant_limits",
      target: name,
      details: { limits: updated.limits, monthlyTokenBudget: updated.monthlyTokenBudget },
    }).run();
    return c.json(updated);
  })
  .post("/keys", keyManagers, validate("json", CreateApiKeyRequestSchema), async (c) => {
    const body = c.req.valid("json");
    const { tenant, actor } = keyManagerFor(c, body.tenant);
    // A fleet key puts a runner into every tenant's pool, so only the operator makes one.
    if (body.scopes.includes("runner") && c.get("principal").kind !== "operator") {
      throw new AppError(
        "forbidden",
        'body.scopes: "runner" (a fleet key) is made by the operator only; got it from a tenant key',
        { param: "scopes" },
      );
    }
    const store = new KeyStore(c.env.DB);
    if (!(await store.tenantExists(tenant))) {
      throw new AppError("not_found", `tenant ${JSON.stringify(tenant)} does not exist`, { param: "tenant" });
    }
    // A key that is dead on arrival is a mistake in the request, not a key to hand out.
    if (body.expiresAt !== undefined && Date.parse(body.expiresAt) <= Date.now()) {
      throw new AppError(
        "invalid_request",
        `body.expiresAt: must be in the future; got ${JSON.stringify(body.expiresAt)}, which has passed`,
        { param: "expiresAt" },
      );
    }
    const created = await store.createKey({ ...body, tenant });
    await audit(c.env.DB, {
      tenant,
      actor,
      action: "key_create",
      target: created.id,
      details: { name: created.name, scopes: created.scopes, prefix: created.prefix, limits: created.limits },
    }).run();
    return c.json(created, 201);
  })
  .patch(
    "/keys/:id",
    keyManagers,
    validate("query", z.strictObject({ tenant: TenantNameSchema.optional() })),
    validate("json", UpdateApiKeyRequestSchema),
    async (c) => {
      const { tenant, actor } = keyManagerFor(c, c.req.valid("query").tenant);
      const { limits } = c.req.valid("json");
      const updated = await new KeyStore(c.env.DB).updateKeyLimits(tenant, c.req.param("id"), limits);
      await audit(c.env.DB, {
        tenant,
        actor,
        action: "key_limits",
        target: updated.id,
        details: { limits: updated.limits },
      }).run();
      return c.json(updated);
    },
  )
  .get(
    "/keys",
    keyManagers,
    validate("query", z.strictObject({ tenant: TenantNameSchema.optional() })),
    async (c) => {
      const { tenant } = keyManagerFor(c, c.req.valid("query").tenant);
      return c.json({ object: "list", data: await new KeyStore(c.env.DB).listKeys(tenant) });
    },
  )
  .delete(
    "/keys/:id",
    keyManagers,
    validate("query", z.strictObject({ tenant: TenantNameSchema.optional() })),
    async (c) => {
      const { tenant, actor } = keyManagerFor(c, c.req.valid("query").tenant);
      const revoked = await new KeyStore(c.env.DB).revokeKey(tenant, c.req.param("id"));
      await audit(c.env.DB, { tenant, actor, action: "key_revoke", target: revoked.id, details: {} }).run();
      return c.json(revoked);
    },
  )
  .get(
    "/audit",
    scoped("admin"),
    validate(
      "query",
      z.strictObject({
        limit: decimalIntegerText(1, 500).default(100),
        before: decimalIntegerText(1).optional(),
      }),
    ),
    async (c) => {
      const { tenant } = tenantWith(c, "admin");
      const { limit, before } = c.req.valid("query");
      return c.json({ object: "list", data: await auditTrail(c.env.DB, tenant, limit, before) });
    },
  );
