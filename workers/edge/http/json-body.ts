// The JSON-body check of validate("json") (src/http/validate.ts) in two steps, for a route that must act on a
// refused body before answering (a refused publish deletes the upload it names). Same reading, same messages.
import type { Context } from "hono";
import type { z } from "zod";
import { formatIssues, problemsError } from "../../../src/contracts/issues.ts";
import { AppError } from "../../../src/errors.ts";
import type { EdgeEnv } from "../env.ts";
import { isJsonMediaType } from "./body-rules.ts";

/** The body as validate("json") reads it: parsed JSON for a JSON content type, `{}` otherwise. */
export async function readJsonBody(c: Context<EdgeEnv>): Promise<unknown> {
  if (!isJsonMediaType(c.req.header("content-type"))) return {};
  try {
    return await c.req.json();
  } catch (error) {
    throw new AppError("invalid_request", "request body: Malformed JSON in request body", { cause: error });
  }
}

/** Parses a body read by readJsonBody; refusals read `body.<field>: <rule>; got <value>`. */
export function parseJsonBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body, { reportInput: true });
  if (result.success) return result.data;
  const problems = formatIssues(result.error).map((p) =>
    p.startsWith("(root)") ? `body${p.slice(6)}` : `body.${p}`,
  );
  throw problemsError("invalid_request", problems, result.error.issues[0]?.path);
}
