import { describe, expect, it } from "vitest";
import { call, type ErrorBody, json, newKey, newTenant } from "./support/edge.ts";

// Authorisation is decided before a body is parsed: a key without scope admin learns nothing about the
// shape the key routes expect, and gets 403 whatever it sends.
describe("key routes check the caller's scope before the body", () => {
  it("answers 403, not 400, to a key without scope admin sending a malformed body", async () => {
    const { tenant } = await newTenant();
    const publisher = await newKey(tenant, ["publish"]);
    const res = await call("POST", "/admin/keys", { token: publisher, json: { scopes: "everything" } });
    const body = await json<ErrorBody>(res, 403);
    expect(body.error.code).toBe("forbidden");
    expect(body.error.message).toContain('needs scope "admin"');
  });

  it("refuses listing and revoking keys to a key without scope admin, with a bad query too", async () => {
    const { tenant } = await newTenant();
    const inferOnly = await newKey(tenant, ["infer"]);
    expect((await call("GET", "/admin/keys?bogus=1", { token: inferOnly })).status).toBe(403);
    expect((await call("DELETE", "/admin/keys/k1?bogus=1", { token: inferOnly })).status).toBe(403);
  });

  it("still validates the body for a tenant admin", async () => {
    const { key } = await newTenant(["admin"]);
    const res = await call("POST", "/admin/keys", { token: key, json: { scopes: "everything" } });
    const body = await json<ErrorBody>(res, 400);
    expect(body.error.code).toBe("invalid_request");
  });
});
