// A promotion whose version was yanked after this isolate resolved it (another isolate's yank, seen here only
// when the 2 s model cache lapses) loses in D1: the alias write is conditional on an unyanked target. Its 409
// must say that, not "alias prod is at version 1; expected version 1", which reads as a contradiction.
import { env } from "cloudflare:workers";
import { beforeEach, expect, it } from "vitest";
import {
  adapterFiles,
  call,
  demoBase,
  type ErrorBody,
  json,
  newTenant,
  publish,
  runner,
} from "./support/edge.ts";

const completion = {
  id: "cmpl-1",
  object: "chat.completion",
  created: 1,
  model: "x",
  choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
};

beforeEach(() => {
  runner.calls = [];
  runner.handler = () => Response.json(completion);
});

it("answers a promotion that lost to a yank with a 409 naming the yank, and changes nothing", async () => {
  const spec = await demoBase();
  const { tenant, key } = await newTenant();
  await publish(key, "support", adapterFiles(spec, { seed: 1 }), { alias: "prod" });
  await publish(key, "support", adapterFiles(spec, { seed: 2 }));
  await json(
    await call("POST", "/admin/routes", {
      token: key,
      json: {
        name: "bot",
        variants: [
          { name: "control", target: "support@prod", weight: 5000 },
          { name: "treatment", target: "support@2", weight: 5000 },
        ],
      },
    }),
    201,
  );
  // This isolate resolves support@2 and keeps it (model cache); then another isolate yanks it, which this
  // one hears nothing of: the write goes to D1 directly, as the other isolate's would.
  const served = await call("POST", "/v1/chat/completions", {
    token: key,
    json: { model: "support@2", messages: [{ role: "user", content: "hi" }] },
  });
  expect(served.status).toBe(200);
  await env.DB.prepare(
    `UPDATE adapter_versions SET yanked_at = ?1
     WHERE version = 2 AND adapter_id = (SELECT id FROM adapters WHERE tenant = ?2 AND name = 'support')`,
  )
    .bind(new Date().toISOString(), tenant)
    .run();

  const promoted = await call("POST", "/admin/routes/bot/promote", {
    token: key,
    json: { variant: "treatment", alias: "prod" },
  });
  const body = await json<ErrorBody>(promoted, 409);
  expect(body.error).toMatchObject({ code: "conflict", param: "variant" });
  expect(body.error.message).toBe(
    "variant: treatment serves support@2, which was yanked while it was being promoted; an alias cannot point at a yanked version, so support@prod stays at version 1 and route bot keeps running",
  );
  const adapter = await json<{ aliases: Record<string, number> }>(
    await call("GET", "/admin/adapters/support", { token: key }),
    200,
  );
  expect(adapter.aliases).toEqual({ prod: 1 });
  const route = await json<{ status: string }>(await call("GET", "/admin/routes/bot", { token: key }), 200);
  expect(route.status).toBe("running");
});
