// Renders zod issues as our messages: the field, the rule and the value (docs/conventions.md#errors).
// Every boundary that parses with a schema reports through here so messages read the same everywhere.
import type { z } from "zod";
import { AppError, type ErrorCode } from "../errors.ts";
import { MAX_REPORTED_PROBLEMS } from "./request-bounds.ts";

/** `messages[0].content`, or `(root)` for the value itself. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out === "" ? "(root)" : out;
}

function describeValue(input: unknown): string {
  if (input === undefined) return "nothing";
  // a bound's refusal quotes its value: a huge list or string is described, never serialized whole
  if (Array.isArray(input) && input.length > 16) return `a list of ${input.length} items`;
  if (typeof input === "string" && input.length > 80) return `${JSON.stringify(input.slice(0, 76))}...`;
  const text = JSON.stringify(input);
  if (text === undefined) return String(input);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function article(expected: string): string {
  if (expected === "int") return "an integer";
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

/** One line per issue: `field: rule; got value`. Parse with `{ reportInput: true }` to get the values. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const field = formatPath(issue.path);
    if (issue.code === "unrecognized_keys") {
      return `${field}: unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    }
    const missing = !("input" in issue) || issue.input === undefined;
    if (issue.code === "invalid_type") {
      return missing
        ? `${field}: is required (${issue.expected})`
        : `${field}: must be ${article(issue.expected)}; got ${describeValue(issue.input)}`;
    }
    const rule = issue.message.replace(/^Invalid input: /, "");
    return missing ? `${field}: ${rule}` : `${field}: ${rule}; got ${describeValue(issue.input)}`;
  });
}

/**
 * Parses `value` or throws AppError(code) whose message is `<what>: <first problem> (and N more)` and whose
 * details hold every problem.
 */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  value: unknown,
  code: ErrorCode,
  what: string,
): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  const problems = formatIssues(result.error).map((p) => `${what}: ${p}`);
  throw problemsError(code, problems, result.error.issues[0]?.path);
}

/**
 * `<first> (and N more)`; details hold the first MAX_REPORTED_PROBLEMS problems and, past them, one line
 * counting the rest, so an error body stays small however many problems a request has.
 */
export function problemsError(
  code: ErrorCode,
  problems: string[],
  path?: ReadonlyArray<PropertyKey>,
): AppError {
  const first = problems[0] ?? "invalid input";
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
  const param = path && path.length > 0 ? formatPath(path) : null;
  const rest = problems.length - MAX_REPORTED_PROBLEMS;
  const details =
    rest > 0
      ? [...problems.slice(0, MAX_REPORTED_PROBLEMS), `... and ${rest} more problems not listed`]
      : problems;
  return new AppError(code, `${first}${more}`, { param, details });
}
