// Routes (A/B experiments between adapter versions): one public model name, several variants, a sticky
// split in basis points. Wire shapes of the admin API, the stored config, results and feedback.
import { z } from "zod";
import { BUCKETS } from "../experiments/hash.ts";
import { rangeProblems } from "../experiments/ranges.ts";
import { NameSchema, RouteNameSchema } from "./names.ts";
import { ChatMessageSchema } from "./openai.ts";

/** Where a request's sticky subject comes from: the OpenAI `user` field, the `x-ab-key` header, or the key. */
export const SUBJECT_SOURCES = ["user", "header", "api_key"] as const;
export const SubjectSourceSchema = z.enum(SUBJECT_SOURCES);
export type SubjectSource = z.infer<typeof SubjectSourceSchema>;
export const SUBJECT_HEADER = "x-ab-key";

export const ROUTE_STATUSES = ["running", "paused", "concluded"] as const;
export const RouteStatusSchema = z.enum(ROUTE_STATUSES);
export type RouteStatus = z.infer<typeof RouteStatusSchema>;

/** No ":" so the hashed string `<route>:<salt>:<subject>` splits one way only. */
export const SaltSchema = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "must be 1..64 of A-Z a-z 0-9 . _ -");
const BasisPointsSchema = z
  .number()
  .int("must be a whole number of basis points")
  .min(0)
  .max(BUCKETS, `must be at most ${BUCKETS} basis points`);
/** A base model id or an adapter reference (`name`, `name@3`, `name@prod`); resolved per request. */
const TargetSchema = z.string().min(1).max(200);

export const VariantSpecSchema = z.strictObject({
  name: NameSchema,
  target: TargetSchema,
  /** Live variants: share of traffic. Shadow variants: share of requests copied to them. */
  weight: BasisPointsSchema,
  shadow: z.boolean().default(false),
});

export const GuardrailsSchema = z.strictObject({
  maxErrorRate: z.number().min(0).max(1).optional(),
  maxP95LatencyMs: z.number().positive().optional(),
  /** Exposures a variant needs before its guardrails are judged. */
  minSamples: z.number().int().min(1).default(100),
});
export type Guardrails = z.infer<typeof GuardrailsSchema>;

interface SplitShape {
  variants: { name: string; weight: number; shadow: boolean }[];
  control?: string | undefined;
}

/** Checks shared by a new route and a stored config: unique names, a live control, live weights sum to 10,000. */
function checkSplit(value: SplitShape, ctx: z.RefinementCtx): void {
  const names = value.variants.map((v) => v.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["variants"],
      message: `variant name ${JSON.stringify(dup)} repeats`,
    });
  }
  const live = value.variants.filter((v) => !v.shadow);
  const sum = live.reduce((n, v) => n + v.weight, 0);
  if (live.length === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["variants"],
      message: "must hold at least one variant that is not a shadow",
    });
  } else if (sum !== BUCKETS) {
    ctx.addIssue({
      code: "custom",
      path: ["variants"],
      message: `live weights must sum to ${BUCKETS} basis points; got ${live.map((v) => `${v.name}=${v.weight}`).join(" + ")} = ${sum}`,
    });
  }
  const control = value.control ?? live[0]?.name;
  if (control !== undefined && !live.some((v) => v.name === control)) {
    ctx.addIssue({
      code: "custom",
      path: ["control"],
      message: `must name a variant that is not a shadow; got ${JSON.stringify(control)}`,
    });
  }
}

export const CreateRouteRequestSchema = z
  .strictObject({
    name: RouteNameSchema,
    variants: z.array(VariantSpecSchema).min(1).max(16),
    /** The baseline: results compare against it, and a variant cut by a guardrail falls back to it. Default: the first live variant. */
    control: NameSchema.optional(),
    subject: SubjectSourceSchema.default("user"),
    /** Changing the salt reshuffles everyone; default: random. */
    salt: SaltSchema.optional(),
    guardrails: GuardrailsSchema.optional(),
    description: z.string().max(2000).optional(),
  })
  .superRefine(checkSplit);
export type CreateRouteRequest = z.infer<typeof CreateRouteRequestSchema>;

const RangeSchema = z.tuple([z.number().int(), z.number().int()]).readonly();

export const VariantSchema = z.strictObject({
  name: NameSchema,
  target: TargetSchema,
  weight: BasisPointsSchema,
  shadow: z.boolean(),
  /** Buckets this live variant owns ([start, end) over 0..9999); empty for shadows. */
  ranges: z.array(RangeSchema),
  /** Set when a guardrail stopped the variant: its buckets go to control. */
  cut: z.strictObject({ reason: z.string(), at: z.string() }).nullable(),
});
export type Variant = z.infer<typeof VariantSchema>;

/** The stored, parsed form of a route's split (D1 `routes.config`). */
export const RouteConfigSchema = z
  .strictObject({
    control: NameSchema,
    subject: SubjectSourceSchema,
    salt: SaltSchema,
    guardrails: GuardrailsSchema.nullable(),
    description: z.string().nullable(),
    variants: z.array(VariantSchema).min(1),
  })
  .superRefine((config, ctx) => {
    checkSplit(config, ctx);
    for (const problem of rangeProblems(config.variants.filter((v) => !v.shadow))) {
      ctx.addIssue({ code: "custom", path: ["variants"], message: problem });
    }
  });
export type RouteConfig = z.infer<typeof RouteConfigSchema>;

export const RouteSchema = z.strictObject({
  name: RouteNameSchema,
  status: RouteStatusSchema,
  /** Bumps on every change; set-weights and status changes may name it for compare-and-set. */
  version: z.number().int().min(1),
  /** The variant a promotion chose; a concluded route serves it (or control). */
  winner: NameSchema.nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  config: RouteConfigSchema,
});
export type Route = z.infer<typeof RouteSchema>;

export const SetWeightsRequestSchema = z.strictObject({
  weights: z.record(NameSchema, BasisPointsSchema),
  expectedVersion: z.number().int().min(1).optional(),
});
export const SetStatusRequestSchema = z.strictObject({
  status: z.enum(["running", "paused"]),
  expectedVersion: z.number().int().min(1).optional(),
});
export const PromoteRequestSchema = z.strictObject({
  variant: NameSchema,
  /** The alias to move to the variant's adapter version, e.g. "prod". */
  alias: NameSchema.refine((v) => !/^\d+$/.test(v), { message: "must not be all digits" }),
  /** Compare-and-set on the alias: the version it must be at now, or null for "must not exist". */
  expected: z.number().int().min(1).nullable().optional(),
});

export const AssignRequestSchema = z.strictObject({
  subjects: z.array(z.string().min(1).max(512)).min(1).max(20_000),
});
export const AssignResponseSchema = z.strictObject({
  version: z.number().int(),
  variants: z.array(NameSchema),
});

export const FeedbackRequestSchema = z
  .strictObject({
    request_id: z.string().min(1).max(128),
    score: z.number().min(0).max(1).optional(),
    label: z.string().min(1).max(64).optional(),
  })
  .refine((f) => f.score !== undefined || f.label !== undefined, {
    message: "must carry a score in [0, 1] or a label (or both)",
  });
export type FeedbackRequest = z.infer<typeof FeedbackRequestSchema>;

const Interval = z.tuple([z.number(), z.number()]);
export const VariantResultSchema = z.strictObject({
  variant: NameSchema,
  target: z.string(),
  shadow: z.boolean(),
  weight: z.number().int(),
  state: z.enum(["active", "cut"]),
  cutReason: z.string().nullable(),
  n: z.number().int(),
  errors: z.number().int(),
  errorRate: z.number().nullable(),
  latencyMs: z.strictObject({ p50: z.number().nullable(), p95: z.number().nullable() }),
  tokens: z.strictObject({ prompt: z.number().int(), completion: z.number().int() }),
  feedback: z.strictObject({
    n: z.number().int(),
    mean: z.number().nullable(),
    ci95: Interval.nullable(),
    labels: z.record(z.string(), z.number().int()),
  }),
  /** Feedback mean minus control's, with a 95% interval (Welch, normal approximation). */
  diffToControl: z.strictObject({ mean: z.number(), ci95: Interval }).nullable(),
});
export type VariantResult = z.infer<typeof VariantResultSchema>;

export const ResultsSchema = z.strictObject({
  route: RouteNameSchema,
  status: RouteStatusSchema,
  version: z.number().int(),
  control: NameSchema,
  variants: z.array(VariantResultSchema),
  /** Sample-ratio mismatch over live exposures under the current version's split; alarm at p < 0.001. */
  srm: z
    .strictObject({ n: z.number().int(), chiSquare: z.number(), pValue: z.number(), alarm: z.boolean() })
    .nullable(),
});
export type Results = z.infer<typeof ResultsSchema>;

export const CompareRequestSchema = z
  .strictObject({
    models: z.array(z.string().min(1).max(200)).min(1).max(8),
    messages: z.array(ChatMessageSchema).min(1).optional(),
    prompt: z.string().optional(),
    max_tokens: z.number().int().positive().max(4096).optional(),
    temperature: z.number().min(0).max(2).optional(),
    top_p: z.number().gt(0).max(1).optional(),
    seed: z.number().int().optional(),
  })
  .refine((r) => (r.messages === undefined) !== (r.prompt === undefined), {
    message: "must carry either messages (chat) or prompt (completion), not both",
  });
export type CompareRequest = z.infer<typeof CompareRequestSchema>;

export const CompareResultSchema = z.strictObject({
  model: z.string(),
  adapter: z.string().nullable(),
  status: z.number().int(),
  latencyMs: z.number(),
  text: z.string().nullable(),
  usage: z.record(z.string(), z.number()).nullable(),
  error: z.string().nullable(),
});
export const CompareResponseSchema = z.strictObject({
  object: z.literal("compare"),
  results: z.array(CompareResultSchema),
});
