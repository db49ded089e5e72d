// Every route bounds its body (BODY_LIMITS in workers/edge/http/body-rules.ts, which the README quotes):
// inference 4 MiB, admin JSON 1 MiB, an upload or a part 64 MiB with Content-Length and 16 MiB without.
// Over the limit is 413 payload_too_large in the OpenAI envelope, before any handler reads the body.
import { describe, expect, it } from "vitest";
import { BODY_LIMITS } from "../../workers/edge/http/body-rules.ts";
import { call, type ErrorBody, json, newTenant } from "./support/edge.ts";

const MiB = 1024 * 1024;

/** JSON text of exactly `bytes` bytes: an object whose one string field pads it. */
function jsonOfSize(bytes: number, fields: Record<string, unknown> = {}): string {
  const base = JSON.stringify({ ...fields, pad: "" });
  return JSON.stringify({ ...fields, pad: "x".repeat(bytes - base.length) });
}

async function expectTooLarge(res: Response, limit: number): Promise<ErrorBody> {
  const body = await json<ErrorBody>(res, 413);
  expect(body.error).toMatchObject({ code: "payload_too_large", type: "invalid_request_error", param: null });
  expect(body.error.message).toContain(`must be <= ${limit} bytes (${limit / MiB} MiB)`);
  return body;
}

describe("body limits", () => {
  it("states the limits the README quotes", () => {
    expect(BODY_LIMITS).toEqual({
      inference: 4 * MiB,
      admin: 1 * MiB,
      upload: 64 * MiB,
      uploadPart: 64 * MiB,
      unsizedUpload: 16 * MiB,
    });
  });

  it("refuses an inference body over 4 MiB, counted or declared, and lets one at the limit through", async () => {
    const { key } = await newTenant();
    const chat = { model: "no-such-model", messages: [{ role: "user", content: "hi" }] };
    const over = jsonOfSize(BODY_LIMITS.inference + 1, chat);
    const counted = await call("POST", "/v1/chat/completions", {
      token: key,
      body: over,
      headers: { "content-type": "application/json" },
    });
    const refused = await expectTooLarge(counted, BODY_LIMITS.inference);
    expect(refused.error.message).toContain("an inference request");

    const declared = await call("POST", "/v1/completions", {
      token: key,
      body: "{}",
      headers: { "content-type": "application/json", "content-length": String(BODY_LIMITS.inference + 1) },
    });
    expect((await expectTooLarge(declared, BODY_LIMITS.inference)).error.message).toContain(
      `got Content-Length ${BODY_LIMITS.inference + 1}`,
    );

    // At the limit the body is read and judged on its content: this model does not exist.
    const atLimit = await call("POST", "/v1/chat/completions", {
      token: key,
      body: jsonOfSize(BODY_LIMITS.inference, chat),
      headers: { "content-type": "application/json" },
    });
    expect(atLimit.status).not.toBe(413);
    expect((await json<ErrorBody>(atLimit, 404)).error.code).toBe("model_not_found");
  });

  it("refuses an admin JSON body over 1 MiB, and reads one at the limit", async () => {
    const { key } = await newTenant();
    const over = await call("POST", "/admin/routes", {
      token: key,
      body: jsonOfSize(BODY_LIMITS.admin + 1),
      headers: { "content-type": "application/json" },
    });
    expect((await expectTooLarge(over, BODY_LIMITS.admin)).error.message).toContain("an admin request");
    const atLimit = await call("POST", "/admin/routes", {
      token: key,
      body: jsonOfSize(BODY_LIMITS.admin),
      headers: { "content-type": "application/json" },
    });
    // Read and refused by the schema, which names the unknown field: the limit let it through.
    const refused = await json<ErrorBody>(atLimit, 400);
    expect(refused.error.details?.join("\n")).toContain('unknown field(s) "pad"');
  });

  it("bounds an upload at 64 MiB by Content-Length and at 16 MiB when it has none", async () => {
    const { key } = await newTenant();
    const sha = { "x-content-sha256": "ab".repeat(32), "content-type": "application/octet-stream" };
    const declared = await call("POST", "/admin/uploads", {
      token: key,
      body: new Uint8Array(16),
      headers: { ...sha, "content-length": String(BODY_LIMITS.upload + 1) },
    });
    expect((await expectTooLarge(declared, BODY_LIMITS.upload)).error.message).toContain("upload in parts");

    const unsized = await call("POST", "/admin/uploads", {
      token: key,
      body: new Uint8Array(BODY_LIMITS.unsizedUpload + 1),
      headers: sha,
    });
    expect((await expectTooLarge(unsized, BODY_LIMITS.unsizedUpload)).error.message).toContain(
      `send Content-Length for up to ${BODY_LIMITS.upload / MiB} MiB`,
    );

    // Under the limit the bytes reach R2, which checks them against the declared digest.
    const small = await call("POST", "/admin/uploads", {
      token: key,
      body: new Uint8Array(1024),
      headers: sha,
    });
    expect((await json<ErrorBody>(small, 400)).error.param).toBe("x-content-sha256");
  });

  it("bounds one part of a multipart upload by its own limit", async () => {
    const { key } = await newTenant();
    const created = await json<{ upload: string; uploadId: string }>(
      await call("POST", "/admin/uploads/multipart", { token: key, json: { sha256: "cd".repeat(32) } }),
      201,
    );
    const path = `/admin/uploads/${created.upload}/parts/1?uploadId=${encodeURIComponent(created.uploadId)}`;
    const declared = await call("PUT", path, {
      token: key,
      body: new Uint8Array(16),
      headers: { "content-length": String(BODY_LIMITS.uploadPart + 1) },
    });
    expect((await expectTooLarge(declared, BODY_LIMITS.uploadPart)).error.message).toContain(
      "one part of a multipart upload",
    );
    const fits = await call("PUT", path, { token: key, body: new Uint8Array(1024) });
    expect((await json<{ partNumber: number }>(fits, 200)).partNumber).toBe(1);
  });
});
