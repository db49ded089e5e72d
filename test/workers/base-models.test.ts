import { exports } from "cloudflare:workers";
import { expect, it } from "vitest";
import { demoSpecConfig } from "../helpers/peft-files.ts";
import { ADMIN, call, type ErrorBody, json, newTenant } from "./support/edge.ts";

it("registers a base model from config.json, idempotently, and any key can read its spec", async () => {
  const first = await call("PUT", "/admin/base-models/org/llama-tiny", {
    token: ADMIN,
    json: demoSpecConfig(),
  });
  expect([200, 201]).toContain(first.status);
  const again = await json<{ fingerprint: string }>(
    await call("PUT", "/admin/base-models/org/llama-tiny", { token: ADMIN, json: demoSpecConfig() }),
    200,
  );
  const { key } = await newTenant(["publish"]);
  const read = await json<{ id: string; fingerprint: string; spec: { modules: unknown[] } }>(
    await call("GET", "/admin/base-models/org/llama-tiny", { token: key }),
    200,
  );
  expect(read.id).toBe("org/llama-tiny");
  expect(read.fingerprint).toBe(again.fingerprint);
  expect(read.spec.modules).toHaveLength(2 * 7);
});

it("refuses re-registering an id with another shape, and a config it cannot serve", async () => {
  await call("PUT", "/admin/base-models/shape-fixed", { token: ADMIN, json: demoSpecConfig() });
  const changed = await call("PUT", "/admin/base-models/shape-fixed", {
    token: ADMIN,
    json: { ...demoSpecConfig(), num_hidden_layers: 3 },
  });
  expect((await json<ErrorBody>(changed, 409)).error.message).toContain("fingerprint");
  const gpt = await call("PUT", "/admin/base-models/gpt", {
    token: ADMIN,
    json: { ...demoSpecConfig(), model_type: "gpt2" },
  });
  const body = await json<ErrorBody>(gpt, 400);
  expect(body.error.code).toBe("invalid_model");
  expect(body.error.message).toContain("model_type");
});

it("answers unknown routes and bad tokens through the deployed entrypoint with the envelope", async () => {
  const res = await exports.default.fetch("http://edge.test/admin/base-models", {
    headers: { authorization: "Bearer nope" },
  });
  expect(res.status).toBe(401);
  expect(res.headers.get("x-request-id")).toBeTruthy();
  expect(((await res.json()) as ErrorBody).error.type).toBe("authentication_error");
  const missing = await exports.default.fetch("http://edge.test/nowhere");
  expect(((await missing.json()) as ErrorBody).error.code).toBe("not_found");
});

it("answers malformed JSON with the envelope, not a stack trace", async () => {
  const res = await call("POST", "/admin/tenants", {
    token: ADMIN,
    body: "{not json",
    headers: { "content-type": "application/json" },
  });
  const body = await json<ErrorBody>(res, 400);
  expect(body.error.code).toBe("invalid_request");
  expect(body.error.message).toMatch(/JSON/i);
});
