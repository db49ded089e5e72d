// The runner's overload flags (README.md, "Limits"): defaults, values, and mistakes refused by flag, rule and
// value before anything starts.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../gpu-runner/serving/config.ts";
import { AppError } from "../../src/errors.ts";

const parse = (...flags: string[]) => parseConfig(["--model", "m", ...flags], {});

function refusal(...flags: string[]): string {
  try {
    parse(...flags);
  } catch (error) {
    if (error instanceof AppError) return error.message;
    throw error;
  }
  throw new Error("the flags were accepted");
}

describe("overload flags", () => {
  it("default to a pool of 2 tokenizer workers, a 10 s deadline, half the batch per tenant, the base's file bound", () => {
    expect(parse()).toMatchObject({
      tokenizerPoolSize: 2,
      tokenizeDeadlineMs: 10_000,
      maxBatchPerTenant: 16,
      maxLoraFileBytes: undefined,
    });
    expect(parse("--max-batch", "5").maxBatchPerTenant).toBe(3);
  });

  it("take their values", () => {
    expect(
      parse(
        "--tokenizer-pool-size",
        "4",
        "--tokenize-deadline-ms",
        "2500",
        "--max-batch",
        "8",
        "--max-batch-per-tenant",
        "8",
        "--max-lora-file-bytes",
        "1048576",
      ),
    ).toMatchObject({
      tokenizerPoolSize: 4,
      tokenizeDeadlineMs: 2500,
      maxBatchPerTenant: 8,
      maxLoraFileBytes: 1_048_576,
    });
  });

  it("refuse mistakes by flag, rule and value", () => {
    expect(refusal("--tokenizer-pool-size", "0")).toBe(
      '--tokenizer-pool-size must be an integer in 1..64; got "0"',
    );
    expect(refusal("--tokenize-deadline-ms", "soon")).toBe(
      '--tokenize-deadline-ms must be an integer in 1..3600000; got "soon"',
    );
    expect(refusal("--max-batch", "8", "--max-batch-per-tenant", "9")).toBe(
      '--max-batch-per-tenant must be an integer in 1..8; got "9"',
    );
    expect(refusal("--max-lora-file-bytes", "-1")).toMatch(
      /^--max-lora-file-bytes must be an integer in 1\.\./,
    );
  });
});
