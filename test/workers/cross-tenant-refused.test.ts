// Tenant isolation (docs/architecture.md#invariants): a tenant never sees, resolves or changes another
// tenant's adapters, aliases, uploads or keys.
import { env } from "cloudflare:workers";
import { beforeEach, expect, it } from "vitest";
import {
  ADMIN,
  adapterFiles,
  call,
  demoBase,
  type ErrorBody,
  json,
  newKey,
  newTenant,
  publish,
  runner,
  sentBody,
  upload,
} from "./support/edge.ts";

beforeEach(() => {
  runner.calls = [];
  runner.handler = () => Response.json({ ok: true });
});

async function twoTenants() {
  const spec = await demoBase();
  const a = await newTenant();
  const b = await newTenant();
  const published = await publish(a.key, "secret", adapterFiles(spec), { alias: "prod" });
  return { spec, a, b, published };
}

it("does not let another tenant resolve, list or read an adapter", async () => {
  const { b } = await twoTenants();
  for (const model of ["secret", "secret@1", "secret@prod"]) {
    const res = await call("POST", "/v1/chat/completions", {
      token: b.key,
      json: { model, messages: [{ role: "user", content: "x" }] },
    });
    expect((await json<ErrorBody>(res, 404)).error.code).toBe("model_not_found");
  }
  expect(runner.calls).toHaveLength(0);
  const models = await json<{ data: { id: string }[] }>(
    await call("GET", "/v1/models", { token: b.key }),
    200,
  );
  expect(models.data.map((m) => m.id)).not.toContain("secret");
  expect(
    (await json<{ data: unknown[] }>(await call("GET", "/admin/adapters", { token: b.key }), 200)).data,
  ).toEqual([]);
  expect((await call("GET", "/admin/adapters/secret", { token: b.key })).status).toBe(404);
  expect((await call("GET", "/admin/adapters/secret/versions/1", { token: b.key })).status).toBe(404);
});

it("does not let another tenant move an alias or yank a version", async () => {
  const { a, b } = await twoTenants();
  const moved = await call("PUT", "/admin/adapters/secret/aliases/prod", {
    token: b.key,
    json: { version: 1 },
  });
  expect(moved.status).toBe(404);
  const yanked = await call("POST", "/admin/adapters/secret/versions/1/yank", { token: b.key });
  expect(yanked.status).toBe(404);
  const still = await json<{ aliases: Record<string, number>; versions: { yankedAt: string | null }[] }>(
    await call("GET", "/admin/adapters/secret", { token: a.key }),
    200,
  );
  expect(still.aliases).toEqual({ prod: 1 });
  expect(still.versions[0]?.yankedAt).toBeNull();
});

it("keeps same-named adapters of two tenants apart", async () => {
  const { spec, a, b, published } = await twoTenants();
  const theirs = await publish(b.key, "secret", adapterFiles(spec, { seed: 5 }));
  expect(theirs.version).toBe(1);
  expect(theirs.adapterId).not.toBe(published.adapterId);
  const res = await call("POST", "/v1/completions", { token: a.key, json: { model: "secret", prompt: "x" } });
  expect(res.status).toBe(200);
  expect((await sentBody()).model).toBe(published.adapterId);
});

it("does not let another tenant publish from an upload it did not make", async () => {
  const { spec, a, b } = await twoTenants();
  const files = adapterFiles(spec, { seed: 11 });
  const staged = await json<{ upload: string }>(await upload(a.key, files.safetensors), 201);
  const res = await call("POST", "/admin/adapters/stolen/versions", {
    token: b.key,
    json: { upload: staged.upload, base: "demo-llama", config: files.config },
  });
  expect((await json<ErrorBody>(res, 404)).error.param).toBe("upload");
  const mine = await call("POST", "/admin/adapters/mine/versions", {
    token: a.key,
    json: { upload: staged.upload, base: "demo-llama", config: files.config },
  });
  expect(mine.status).toBe(201);
});

it("does not let a tenant list, create or revoke another tenant's keys", async () => {
  const { a, b } = await twoTenants();
  const listed = await json<{ data: { tenant: string; id: string }[] }>(
    await call("GET", "/admin/keys", { token: a.key }),
    200,
  );
  expect(listed.data.every((k) => k.tenant === a.tenant)).toBe(true);
  expect(JSON.stringify(listed)).not.toContain("key_hash");
  const theirs = await call("GET", `/admin/keys?tenant=${a.tenant}`, { token: b.key });
  expect(theirs.status).toBe(403);
  const create = await call("POST", "/admin/keys", {
    token: b.key,
    json: { tenant: a.tenant, name: "x", scopes: ["infer"] },
  });
  expect(create.status).toBe(403);
  const revoke = await call("DELETE", `/admin/keys/${listed.data[0]?.id}`, { token: b.key });
  expect(revoke.status).toBe(404);
  expect((await call("GET", "/v1/models", { token: a.key })).status).toBe(200);
});

it("revokes keys: a revoked key is refused at once, and only its hash was ever stored", async () => {
  const { tenant } = await newTenant();
  const key = await newKey(tenant, ["infer"]);
  const row = await env.DB.prepare("SELECT * FROM api_keys WHERE tenant = ? AND name = 'extra'")
    .bind(tenant)
    .first();
  expect(JSON.stringify(row)).not.toContain(key);
  expect((await call("GET", "/v1/models", { token: key })).status).toBe(200);
  const id = (row as { id: string }).id;
  await json(await call("DELETE", `/admin/keys/${id}?tenant=${tenant}`, { token: ADMIN }), 200);
  expect((await call("GET", "/v1/models", { token: key })).status).toBe(401);
});

it("keeps tenant keys away from operator routes and the operator away from tenant adapters", async () => {
  const { a } = await twoTenants();
  expect((await call("POST", "/admin/tenants", { token: a.key, json: { name: "evil" } })).status).toBe(403);
  expect((await call("PUT", "/admin/base-models/evil", { token: a.key, json: {} })).status).toBe(403);
  expect((await call("GET", "/admin/adapters", { token: ADMIN })).status).toBe(403);
  const inferOnly = await newKey(a.tenant, ["infer"]);
  const res = await call("GET", "/admin/adapters", { token: inferOnly });
  expect((await json<ErrorBody>(res, 403)).error.message).toContain('needs scope "publish"');
});
