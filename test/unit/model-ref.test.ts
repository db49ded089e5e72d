import { describe, expect, it } from "vitest";
import { AliasNameSchema, formatModelRef, NameSchema, parseModelRef } from "../../src/contracts/names.ts";
import { AppError } from "../../src/errors.ts";

function refusal(model: string): AppError {
  try {
    parseModelRef(model);
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).param).toBe("model");
    return error as AppError;
  }
  throw new Error(`expected ${model} to be refused`);
}

describe("parseModelRef", () => {
  it("reads name, name@version and name@alias", () => {
    expect(parseModelRef("support")).toEqual({ kind: "latest", name: "support" });
    expect(parseModelRef("support-v2.1_x@3")).toEqual({
      kind: "version",
      name: "support-v2.1_x",
      version: 3,
    });
    expect(parseModelRef("support@prod")).toEqual({ kind: "alias", name: "support", alias: "prod" });
    expect(parseModelRef("9lives@canary-2")).toEqual({ kind: "alias", name: "9lives", alias: "canary-2" });
  });

  it("round-trips through formatModelRef", () => {
    for (const text of ["a", "a@1", "a@prod"]) expect(formatModelRef(parseModelRef(text))).toBe(text);
  });

  it("refuses bad names, versions and aliases with the part that is wrong", () => {
    expect(refusal("Support").message).toBe(
      'model "Support": name "Support" must be 1..64 of a-z 0-9 . _ -, starting with a letter or digit',
    );
    expect(refusal("").message).toContain('name ""');
    expect(refusal("-x").message).toContain('name "-x"');
    expect(refusal(`a${"b".repeat(64)}`).message).toContain("must be 1..64");
    expect(refusal("support@0").message).toBe(
      'model "support@0": version must be an integer >= 1 without leading zeros; got "0"',
    );
    expect(refusal("support@007").message).toContain('got "007"');
    expect(refusal("support@").message).toBe(
      'model "support@": after "@" comes a version (1, 2, ...) or an alias (1..64 of a-z 0-9 . _ -, starting with a letter or digit); got ""',
    );
    expect(refusal("support@prod@2").message).toContain('got "prod@2"');
    expect(refusal("support@Prod").message).toContain('got "Prod"');
  });
});

describe("name schemas", () => {
  it("accept the rule's edges and refuse the rest", () => {
    expect(NameSchema.safeParse("a").success).toBe(true);
    expect(NameSchema.safeParse("a".repeat(64)).success).toBe(true);
    expect(NameSchema.safeParse("a".repeat(65)).success).toBe(false);
    expect(NameSchema.safeParse("_a").success).toBe(false);
    expect(NameSchema.safeParse("a/b").success).toBe(false);
    expect(AliasNameSchema.safeParse("12").success).toBe(false);
    expect(AliasNameSchema.safeParse("v12").success).toBe(true);
  });
});
