// The runner pool as configuration: `RUNNER_URL` (one URL, or several separated by commas, all sharing
// `RUNNER_TOKEN`) or, when set, `RUNNERS`: a JSON array of `{url, token?, weight?}` for pools whose runners
// differ in secret or size (keep it a secret when it carries tokens: `wrangler secret put RUNNERS`); an entry's
// `base` says which base model it serves, so requests for other bases skip it. `RUNNERS=[]` leaves the pool to
// runners that join at run time (workers/edge/fleet/).
import { z } from "zod";
import { AppError } from "../../../src/errors.ts";

export interface RunnerEndpoint {
  /** Base URL without a trailing slash. */
  url: string;
  token: string;
  /** Relative capacity: a runner of weight 2 wins twice the adapters and takes twice the load. */
  weight: number;
  /** The base model it serves; absent: any (a static entry that does not say). */
  baseModel?: string;
  /** Set for a fleet member (its id in D1); absent for static entries. */
  memberId?: string;
}

export interface PoolConfig {
  runners: RunnerEndpoint[];
  /** Longest wait for a runner's first byte before the request moves to the next runner. */
  timeoutMs: number;
}

export interface PoolEnv {
  RUNNER_URL?: string;
  RUNNER_TOKEN?: string;
  RUNNERS?: string;
  RUNNER_TIMEOUT_MS?: string;
}

export const DEFAULT_TIMEOUT_MS = 120_000;

const UrlSchema = z
  .string()
  .trim()
  .regex(/^https?:\/\/[^/\s]+(\/\S*)?$/, "must be an http(s) URL")
  .transform((u) => u.replace(/\/+$/, ""));

const RunnerSpecSchema = z.strictObject({
  url: UrlSchema,
  token: z.string().min(1, "must not be empty").optional(),
  weight: z.number().positive("must be > 0").max(1000, "must be <= 1000").default(1),
  base: z.string().min(1, "must not be empty").max(200, "must be at most 200 characters").optional(),
});

// Empty is allowed: the pool is then the fleet's members only.
const RunnersSchema = z.array(RunnerSpecSchema);

function configError(field: string, rule: string): AppError {
  // Values are left out on purpose: these variables may carry runner tokens.
  return new AppError("internal_error", `${field}: ${rule}`, { param: field });
}

function issueError(field: string, error: z.ZodError): AppError {
  const issue = error.issues[0];
  const where = (issue?.path ?? []).map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
  return configError(`${field}${where}`, issue?.message ?? "is invalid");
}

function fromJson(text: string, defaultToken: string | undefined): RunnerEndpoint[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw configError(
      "RUNNERS",
      "must be a JSON array of {url, token?, weight?, base?}; it is not valid JSON",
    );
  }
  const parsed = RunnersSchema.safeParse(raw);
  if (!parsed.success) throw issueError("RUNNERS", parsed.error);
  return parsed.data.map((r, i) => {
    const token = r.token ?? defaultToken;
    if (!token) throw configError(`RUNNERS[${i}].token`, "is required when RUNNER_TOKEN is not set");
    return { url: r.url, token, weight: r.weight, ...(r.base === undefined ? {} : { baseModel: r.base }) };
  });
}

function fromList(list: string, token: string | undefined): RunnerEndpoint[] {
  if (!token) throw configError("RUNNER_TOKEN", "must be set (the shared secret the edge sends to runners)");
  const urls = list
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  if (urls.length === 0) throw configError("RUNNER_URL", "must name at least one runner");
  return urls.map((url, i) => {
    const parsed = UrlSchema.safeParse(url);
    if (!parsed.success) throw configError("RUNNER_URL", `entry ${i + 1} must be an http(s) URL`);
    return { url: parsed.data, token, weight: 1 };
  });
}

function timeout(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === "") return DEFAULT_TIMEOUT_MS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 3_600_000) {
    throw configError("RUNNER_TIMEOUT_MS", `must be an integer in 1..3600000; got ${JSON.stringify(raw)}`);
  }
  return n;
}

export function parsePoolConfig(env: PoolEnv): PoolConfig {
  const json = env.RUNNERS?.trim();
  const runners =
    json !== undefined && json !== ""
      ? fromJson(json, env.RUNNER_TOKEN)
      : fromList(env.RUNNER_URL ?? "", env.RUNNER_TOKEN);
  const urls = runners.map((r) => r.url);
  const dup = urls.find((u, i) => urls.indexOf(u) !== i);
  if (dup !== undefined) throw configError("RUNNERS", `lists runner ${urls.indexOf(dup) + 1} twice`);
  return { runners, timeoutMs: timeout(env.RUNNER_TIMEOUT_MS) };
}

let memo: { key: string; config: PoolConfig } | null = null;

/** parsePoolConfig, once per isolate and configuration (the bindings are the same on every request). */
export function poolConfigFrom(env: PoolEnv): PoolConfig {
  const key = JSON.stringify([env.RUNNERS, env.RUNNER_URL, env.RUNNER_TOKEN, env.RUNNER_TIMEOUT_MS]);
  if (memo?.key !== key) memo = { key, config: parsePoolConfig(env) };
  return memo.config;
}
