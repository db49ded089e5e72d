// `npm run train` options → validated settings (one zod schema, so every mistake names the flag, the rule and
// the value before anything loads).
import { z } from "zod";
import { formatIssues } from "../../../src/contracts/issues.ts";
import { NAME_RULE, RouteNameSchema } from "../../../src/contracts/names.ts";
import { AppError } from "../../../src/errors.ts";

const num = z.coerce.number();
const int = z.coerce.number().int();

export const TrainSettingsSchema = z.strictObject({
  base: z.string().min(1),
  data: z.string().min(1),
  out: z.string().min(1),
  val: z.string().min(1).optional(),
  valFraction: num.min(0).lt(1).default(0.1),
  r: int.positive().max(256).default(16),
  alpha: num.positive().optional(),
  rslora: z.boolean().default(false),
  targets: z.string().min(1).default("all-linear"),
  dropout: num.min(0).lt(1).default(0),
  optimizer: z.enum(["adamw", "sgd"]).default("adamw"),
  lr: num.positive().default(2e-4),
  weightDecay: num.min(0).default(0),
  warmup: int.min(0).default(0),
  schedule: z.enum(["constant", "linear", "cosine"]).default("linear"),
  epochs: int.positive().default(3),
  maxSteps: int.min(0).default(0),
  batchSize: int.positive().default(4),
  accumulation: int.positive().default(1),
  maxGradNorm: num.min(0).default(1),
  seed: int.default(0),
  threads: int.positive().default(2),
  /** onnxruntime sessions kept open, one per padded length: rows spread over more lengths rebuild them. */
  maxSessions: int.positive().max(64).default(3),
  allTokens: z.boolean().default(false),
  maxTokens: int.positive().default(1024),
  checkpointEvery: int.min(0).default(0),
  resume: z.string().min(1).optional(),
  init: z.string().min(1).optional(),
  champion: z.string().min(1).optional(),
  skipBadRows: z.boolean().default(false),
  json: z.boolean().default(false),
  publish: z.boolean().default(false),
  name: z.string().min(1).optional(),
  baseId: z.string().min(1).optional(),
  alias: z.string().min(1).optional(),
  /** Percent of the route's traffic on the new version (two decimals at most: basis points). */
  canary: num
    .gt(0)
    .max(100)
    .refine((v) => Number.isInteger(Math.round(v * 1e6) / 1e4), "must have at most two decimals")
    .optional(),
  route: RouteNameSchema.optional(),
  endpoint: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
});
export type TrainSettings = z.infer<typeof TrainSettingsSchema>;

const kebab = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** Parses citty's raw args (camelCase keys); a problem names the flag as typed. */
export function parseSettings(raw: Record<string, unknown>): TrainSettings {
  const picked = Object.fromEntries(
    Object.keys(TrainSettingsSchema.shape)
      .filter((k) => raw[k] !== undefined)
      .map((k) => [k, raw[k]]),
  );
  const parsed = TrainSettingsSchema.safeParse(picked, { reportInput: true });
  if (!parsed.success) {
    const problems = formatIssues(parsed.error).map((p) => p.replace(/^([a-zA-Z]+)/, (k) => kebab(k)));
    throw new AppError("invalid_request", `bad options: ${problems.join("; ")}`, { details: problems });
  }
  const s = parsed.data;
  if (s.publish && !s.name) throw new AppError("invalid_request", "--publish needs --name <adapter name>");
  checkCanary(s);
  return s;
}

const bad = (message: string) => new AppError("invalid_request", message);

function checkCanary(s: TrainSettings): void {
  if (s.canary === undefined) {
    if (s.route !== undefined) throw bad("--route names the canary's route: it needs --canary <percent>");
    return;
  }
  if (!s.publish) throw bad("--canary needs --publish (the canary serves the version it publishes)");
  if (s.alias === "prod" || s.alias === "canary") {
    throw bad(`--alias ${s.alias} with --canary: the canary manages ${s.alias} itself; leave --alias out`);
  }
  const route = canaryRoute(s);
  // The edge refuses a route named like one of the tenant's adapters, and this one exists once published.
  if (route === s.name)
    throw bad(`--route ${route}: the adapter's own name cannot name a route; pick another`);
  if (!RouteNameSchema.safeParse(route).success) {
    throw bad(`--route: must be ${NAME_RULE}; got ${JSON.stringify(route)} (pass --route to choose one)`);
  }
}

/** The route a canary runs on: --route, else `<name>-canary`. */
export function canaryRoute(s: TrainSettings): string {
  return s.route ?? `${s.name}-canary`;
}

/** --canary percent as basis points. */
export function canaryBasisPoints(s: TrainSettings): number | null {
  return s.canary === undefined ? null : Math.round(s.canary * 100);
}

/** `all-linear`, or a comma-separated list of module names (q_proj,v_proj). */
export function targetModules(s: TrainSettings): string[] | "all-linear" {
  return s.targets === "all-linear"
    ? "all-linear"
    : s.targets
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean);
}
