// The one mapping from a thrown value to our vocabulary, shared by the edge and the runner.
import { HTTPException } from "hono/http-exception";
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/errors.ts";
import { toAppError } from "../../src/http/errors.ts";

describe("toAppError", () => {
  it("passes an AppError through unchanged", () => {
    const error = new AppError("not_found", "no such adapter");
    expect(toAppError(error)).toBe(error);
  });

  it("reads Hono's refusals as the caller's mistakes: 413 as payload_too_large, others as invalid_request", () => {
    const big = toAppError(new HTTPException(413, { message: "Payload Too Large" }));
    expect([big.code, big.status]).toEqual(["payload_too_large", 413]);
    const bad = toAppError(new HTTPException(400, { message: "Malformed JSON in request body" }));
    expect([bad.code, bad.status, bad.message]).toEqual([
      "invalid_request",
      400,
      "request body: Malformed JSON in request body",
    ]);
  });

  it("keeps a fault's text out of the message and in the cause", () => {
    const fault = new Error("ECONNRESET at 10.0.0.7");
    const mapped = toAppError(fault);
    expect([mapped.code, mapped.status]).toEqual(["internal_error", 500]);
    expect(mapped.message).not.toContain("10.0.0.7");
    expect(mapped.cause).toBe(fault);
  });
});
