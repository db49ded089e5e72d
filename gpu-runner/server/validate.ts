// zValidator with our envelope (HOUSE-STYLE 7): its default hook would leak the raw safeParse result, and
// zod only reports the offending values when parsing with `reportInput`.
import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
import { formatIssues, problemsError } from "../../src/contracts/issues.ts";

function prefixed(where: string, problem: string): string {
  return problem.startsWith("(root)") ? `${where}${problem.slice(6)}` : `${where}.${problem}`;
}

export function validate<Target extends keyof ValidationTargets, S extends z.ZodType>(
  target: Target,
  schema: S,
) {
  return zValidator(
    target,
    schema,
    (result) => {
      if (!result.success) {
        const where = target === "json" ? "body" : target;
        throw problemsError(
          "invalid_request",
          formatIssues(result.error as unknown as z.ZodError).map((p) => prefixed(where, p)),
          result.error.issues[0]?.path,
        );
      }
    },
    // the cast bridges zod's classic and core result types, which differ only in the error class
    { validationFunction: (s, value) => s.safeParse(value, { reportInput: true }) as never },
  );
}
