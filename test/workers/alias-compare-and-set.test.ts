import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { adapterFiles, call, demoBase, type ErrorBody, json, newTenant, publish } from "./support/edge.ts";

async function setup() {
  const spec = await demoBase();
  const { tenant, key } = await newTenant();
  for (const seed of [1, 2, 3]) await publish(key, "support", adapterFiles(spec, { seed }));
  const move = (alias: string, body: Record<string, unknown>) =>
    call("PUT", `/admin/adapters/support/aliases/${alias}`, { token: key, json: body });
  const auditCount = async () =>
    (
      await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_log WHERE tenant = ? AND action = 'alias_move'")
        .bind(tenant)
        .first<{ n: number }>()
    )?.n;
  return { key, move, auditCount };
}

it("moves an alias only when it is at the expected version, and audits only the moves that happened", async () => {
  const { key, move, auditCount } = await setup();
  expect(await json(await move("prod", { version: 1, expected: null }), 200)).toMatchObject({
    version: 1,
    previous: null,
  });
  const created = await json<ErrorBody>(await move("prod", { version: 2, expected: null }), 409);
  expect(created.error.message).toBe("alias support@prod is at version 1; expected it not to exist");

  expect(await json(await move("prod", { version: 2, expected: 1 }), 200)).toMatchObject({
    version: 2,
    previous: 1,
  });
  const stale = await json<ErrorBody>(await move("prod", { version: 3, expected: 1 }), 409);
  expect(stale.error).toMatchObject({ code: "conflict", param: "expected" });
  expect(stale.error.message).toBe("alias support@prod is at version 2; expected version 1");

  const shown = await json<{ aliases: Record<string, number> }>(
    await call("GET", "/admin/adapters/support", { token: key }),
    200,
  );
  expect(shown.aliases).toEqual({ prod: 2 });
  expect(await auditCount()).toBe(2);
});

it("lets exactly one of several racing compare-and-set moves win", async () => {
  const { move, auditCount } = await setup();
  await json(await move("prod", { version: 1, expected: null }), 200);
  const results = await Promise.all([2, 3, 2, 3, 2].map((version) => move("prod", { version, expected: 1 })));
  expect(results.map((r) => r.status).sort()).toEqual([200, 409, 409, 409, 409]);
  expect(await auditCount()).toBe(2);
});

it("refuses an alias to a version that does not exist, and a version-like alias name", async () => {
  const { move } = await setup();
  expect((await json<ErrorBody>(await move("prod", { version: 9 }), 404)).error.message).toContain(
    "support@9",
  );
  expect((await json<ErrorBody>(await move("12", { version: 1 }), 400)).error.message).toContain(
    "must not be all digits",
  );
});

it("refuses to yank a version an alias points at, and to point an alias at a yanked version", async () => {
  const { key, move } = await setup();
  await json(await move("prod", { version: 2 }), 200);
  const refused = await json<ErrorBody>(
    await call("POST", "/admin/adapters/support/versions/2/yank", { token: key }),
    409,
  );
  expect(refused.error.message).toBe(
    "support@2 cannot be yanked while aliases point at it: prod; move them first",
  );

  await json(await call("POST", "/admin/adapters/support/versions/3/yank", { token: key }), 200);
  const toYanked = await json<ErrorBody>(await move("prod", { version: 3, expected: 2 }), 409);
  expect(toYanked.error.message).toContain("yanked");
  const version = await json<{ yankedAt: string | null; manifest: { version: number } }>(
    await call("GET", "/admin/adapters/support/versions/3", { token: key }),
    200,
  );
  expect(version.yankedAt).not.toBeNull();
  expect(version.manifest.version).toBe(3);
});

it("keeps versions immutable in D1 itself", async () => {
  const { key } = await setup();
  await expect(
    env.DB.prepare("UPDATE adapter_versions SET weights_sha256 = 'x' WHERE version = 1").run(),
  ).rejects.toThrow(/immutable/);
  const v1 = await json<{ weightsSha256: string }>(
    await call("GET", "/admin/adapters/support/versions/1", { token: key }),
    200,
  );
  expect(v1.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
});

it("records publishes, alias moves and yanks in the tenant's audit trail, newest first", async () => {
  const { key, move } = await setup();
  await json(await move("prod", { version: 1 }), 200);
  await json(await call("POST", "/admin/adapters/support/versions/3/yank", { token: key }), 200);
  const trail = await json<{ data: { action: string; target: string; details: { version?: number } }[] }>(
    await call("GET", "/admin/audit?limit=5", { token: key }),
    200,
  );
  expect(trail.data.map((e) => `${e.action} ${e.target}`)).toEqual([
    "yank support@3",
    "alias_move support@prod",
    "publish support",
    "publish support",
    "publish support",
  ]);
  expect(trail.data.slice(2).map((e) => e.details.version)).toEqual([3, 2, 1]);
});
