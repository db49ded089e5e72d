import { describe, expect, it } from "vitest";
import { canonicalJson, sha256Hex, timingSafeEqualString } from "../../src/crypto.ts";

describe("sha256Hex", () => {
  it("matches the FIPS 180-2 test vectors for strings and bytes", async () => {
    expect(await sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(await sha256Hex(new Uint8Array())).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    const view = new TextEncoder().encode("xxabcxx").subarray(2, 5);
    expect(await sha256Hex(view)).toBe(await sha256Hex("abc"));
  });
});

describe("canonicalJson", () => {
  it("sorts keys at every depth and drops undefined members", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { y: 1, x: 2 }], c: null }, u: undefined })).toBe(
      '{"a":{"c":null,"d":[3,{"x":2,"y":1}]},"b":1}',
    );
    expect(canonicalJson({ b: 1, a: 2 })).toBe(canonicalJson({ a: 2, b: 1 }));
    expect(canonicalJson("é\n")).toBe('"é\\n"');
    expect(canonicalJson(new Date(0))).toBe('"1970-01-01T00:00:00.000Z"');
  });

  it("refuses values JSON cannot hold rather than hashing them as null", () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow("NaN has no JSON form");
    expect(() => canonicalJson(1n)).toThrow("bigint has no JSON form");
  });
});

describe("timingSafeEqualString", () => {
  it("is true only for equal strings", () => {
    expect(timingSafeEqualString("secret-token", "secret-token")).toBe(true);
    expect(timingSafeEqualString("secret-token", "secret-tokeN")).toBe(false);
    expect(timingSafeEqualString("secret-token", "secret-token2")).toBe(false);
    expect(timingSafeEqualString("", "")).toBe(true);
    expect(timingSafeEqualString("", "a")).toBe(false);
    expect(timingSafeEqualString("é", "e")).toBe(false);
  });
});
