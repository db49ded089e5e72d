import { describe, expect, it } from "vitest";
import {
  AdapterLoadHeadersSchema,
  decodeAdapterConfigHeader,
  encodeAdapterConfigHeader,
} from "../../src/contracts/runner.ts";
import { peftConfigJson } from "../helpers/peft-files.ts";

describe("x-adapter-config header", () => {
  it("round-trips a PEFT config, non-ASCII included, as header-safe base64url", () => {
    const config = peftConfigJson({ base_model_name_or_path: "modèle/ünïcode ✓" });
    const header = encodeAdapterConfigHeader(config);
    expect(header).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeAdapterConfigHeader(header)).toEqual(config);
    expect(new Headers({ "x-adapter-config": header }).get("x-adapter-config")).toBe(header);
  });

  it("refuses text that is not base64url JSON", () => {
    expect(() => decodeAdapterConfigHeader("a+b/")).toThrow("not base64url");
    expect(() => decodeAdapterConfigHeader(encodeAdapterConfigHeader("x").slice(0, 2))).toThrow();
  });
});

describe("AdapterLoadHeadersSchema", () => {
  it("requires the config and a sha256, reading header objects as Headers yields them", () => {
    const headers = new Headers({
      "x-adapter-config": encodeAdapterConfigHeader({ r: 8 }),
      "x-weights-sha256": "a".repeat(64),
      "content-type": "application/octet-stream",
    });
    expect(AdapterLoadHeadersSchema.safeParse(Object.fromEntries(headers)).success).toBe(true);
    const bad = AdapterLoadHeadersSchema.safeParse({ "x-weights-sha256": "A".repeat(64) });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.path.join("."))).toEqual(["x-adapter-config", "x-weights-sha256"]);
  });
});
