import { describe, expect, it } from "vitest";
import { AppError } from "../../src/errors.ts";
import { parseHeader, readSafetensors, SAFETENSORS_MAX_HEADER_BYTES } from "../../src/safetensors.ts";
import { rawSafetensors } from "../helpers/raw-safetensors.ts";

function refusal(bytes: Uint8Array): string {
  try {
    readSafetensors(bytes, "adapter_model.safetensors");
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe("invalid_safetensors");
    return (error as AppError).message;
  }
  throw new Error("expected a refusal; the file was accepted");
}

const t = (dtype: string, shape: number[], begin: number, end: number) => ({
  dtype,
  shape,
  data_offsets: [begin, end],
});

describe("readSafetensors refuses malformed files", () => {
  it("refuses a file shorter than the 8-byte length", () => {
    expect(refusal(new Uint8Array(5))).toBe(
      "adapter_model.safetensors: file is 5 bytes; a safetensors file starts with an 8-byte header size",
    );
  });

  it("refuses a header length over 100 MB before reading it", () => {
    const bytes = rawSafetensors("{}", 0, BigInt(SAFETENSORS_MAX_HEADER_BYTES + 1));
    expect(refusal(bytes)).toBe(
      `adapter_model.safetensors: header size must be <= ${SAFETENSORS_MAX_HEADER_BYTES} bytes; got ${SAFETENSORS_MAX_HEADER_BYTES + 1}`,
    );
  });

  it("refuses a header that runs past the end of the file", () => {
    expect(refusal(rawSafetensors("{}", 0, 64n))).toBe(
      "adapter_model.safetensors: truncated: header says 64 bytes of JSON but only 2 follow",
    );
  });

  it("refuses a data buffer shorter than the offsets say", () => {
    expect(refusal(rawSafetensors({ a: t("F32", [4], 0, 16) }, 12))).toBe(
      "adapter_model.safetensors: truncated: tensors need 16 data bytes after the header; the file has 12",
    );
  });

  it("refuses trailing bytes after the data buffer", () => {
    expect(refusal(rawSafetensors({ a: t("F32", [1], 0, 4) }, 8))).toContain("trailing bytes");
  });

  it("refuses overlapping offsets", () => {
    const header = { a: t("F32", [2], 0, 8), b: t("F32", [2], 4, 12) };
    expect(refusal(rawSafetensors(header, 12))).toBe(
      'adapter_model.safetensors: tensor "b" overlaps the previous tensor (begins at 4, previous ends at 8)',
    );
  });

  it("refuses holes between tensors", () => {
    const header = { a: t("F32", [1], 0, 4), b: t("F32", [1], 8, 12) };
    expect(refusal(rawSafetensors(header, 12))).toBe(
      "adapter_model.safetensors: hole in data buffer: bytes 4..8 belong to no tensor",
    );
  });

  it("refuses offsets that disagree with dtype and shape", () => {
    expect(refusal(rawSafetensors({ a: t("F16", [3], 0, 4) }, 4))).toBe(
      'adapter_model.safetensors: tensor "a" F16[3] needs 6 bytes; data_offsets span 4',
    );
  });

  it("refuses unknown dtypes, bad shapes and bad offsets", () => {
    expect(refusal(rawSafetensors({ a: t("F128", [1], 0, 16) }, 16))).toBe(
      'adapter_model.safetensors: tensor "a" has unknown dtype "F128"',
    );
    expect(refusal(rawSafetensors({ a: t("F32", [-1], 0, 4) }, 4))).toContain(
      "shape must be a list of non-negative integers",
    );
    expect(refusal(rawSafetensors({ a: t("F32", [1], 4, 0) }, 4))).toContain(
      "data_offsets must be [begin, end]",
    );
  });

  it("refuses non-JSON headers, non-object headers and non-string metadata", () => {
    expect(refusal(rawSafetensors("[1,2]", 0))).toBe(
      "adapter_model.safetensors: header JSON must start with '{'",
    );
    expect(refusal(rawSafetensors("{nope", 0))).toMatch(
      /^adapter_model\.safetensors: header is not valid JSON/,
    );
    expect(refusal(rawSafetensors({ __metadata__: { format: 1 } }, 0))).toBe(
      "adapter_model.safetensors: __metadata__.format must be a string; got number",
    );
  });

  it("parses a header from a prefix alone, padded with spaces, when the file length is unknown", () => {
    const bytes = rawSafetensors(`${JSON.stringify({ a: t("BF16", [2, 2], 0, 8) })}      `, 8);
    const header = parseHeader(bytes.subarray(0, bytes.byteLength - 8));
    expect(header.tensors).toEqual([{ name: "a", dtype: "BF16", shape: [2, 2], begin: 0, end: 8 }]);
    expect(header.dataBytes).toBe(8);
  });
});
