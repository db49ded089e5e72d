// Tenants and API keys. The operator (bootstrap token) creates tenants and keys for any tenant; a tenant's
// admin key manages its own keys only.
import { Hono } from "hono";
import { z } from "zod";
import { CreateTenantRequestSchema, decimalIntegerText } from "../../../src/contracts/admin.ts";
import { CreateApiKeyRequestSchema } from "../../../src/contracts/keys.ts";
import { TenantNameSchema } from "../../../src/contracts/names.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import { audit, auditTrail } from "../common/audit.ts";
import type { EdgeEnv } from "../env.ts";
import { keyManagerFor, keyManagers, operatorOnly, scoped, tenantWith } from "../http/auth.ts";
import { KeyStore } from "./key-store.ts";

export const tenantRoutes = new Hono<EdgeEnv>()
  .post("/tenants", operatorOnly, validate("json", CreateTenantRequestSchema), async (c) => {
    const { name } = c.req.valid("json");
    const tenant = await new KeyStore(c.env.DB).createTenant(name);
    await audit(c.env.DB, {
      tenant: name,
      actor: "operator",
      action: "tenant_create",
      target: name,
      details: {},
    }).run();
    return c.json(tenant, 201);
  })
  .post("/keys", keyManagers, validate("json", CreateApiKeyRequestSchema), async (c) => {
    const body = c.req.valid("json");
    const { tenant, actor } = keyManagerFor(c, body.tenant);
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
      details: { name: created.name, scopes: created.scopes, prefix: created.prefix },
    }).run();
    return c.json(created, 201);
  })
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
