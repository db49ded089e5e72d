// zValidator with our error envelope (docs/conventions.md#validation), shared by the edge and the runner:
// its default hook would leak the raw safeParse result.
import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
import { formatIssues, problemsError } from "../contracts/issues.ts";

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
    // reportInput puts the offending value into each issue, so messages can quote it
    // (docs/conventions.md#errors).
    { validationFunction: (s, value) => s.safeParse(value, { reportInput: true }) as never },
  );
}
