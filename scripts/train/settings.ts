// `npm run train` options → validated settings (one zod schema, so every mistake names the flag, the rule and
// the value before anything loads).
import { z } from "zod";
import { formatIssues } from "../../src/contracts/issues.ts";
import { AppError } from "../../src/errors.ts";

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
  return s;
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
