// The usage API: `GET /admin/usage` and what `npm run usage` prints. Usage is counted per hour (UTC), so
// `from` and `to` are read at the hour: an hour counts when it starts at or after `from` and before `to`.
import { z } from "zod";
import { TenantNameSchema } from "./names.ts";

export const USAGE_GROUPS = ["adapter", "key", "route", "day"] as const;
export const UsageGroupSchema = z.enum(USAGE_GROUPS);
export type UsageGroup = z.infer<typeof UsageGroupSchema>;

/** Longest span one query may cover: a year of hourly lines is still a small scan per tenant. */
export const USAGE_MAX_DAYS = 366;

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** An instant: ISO 8601 with an offset, or a date (`2026-05-01`, its midnight UTC). */
export const UsageInstantSchema = z
  .string()
  .refine(
    (s) =>
      (DATE.test(s) || z.iso.datetime({ offset: true }).safeParse(s).success) && !Number.isNaN(Date.parse(s)),
    {
      message: "must be a date (YYYY-MM-DD) or an ISO 8601 date-time with an offset",
    },
  )
  .transform((s) => Date.parse(DATE.test(s) ? `${s}T00:00:00Z` : s));

export const UsageQuerySchema = z.strictObject({
  /** Default: the first day of the current month (UTC). */
  from: UsageInstantSchema.optional(),
  /** Default: now. */
  to: UsageInstantSchema.optional(),
  group_by: UsageGroupSchema.default("adapter"),
  /** Operator only: one tenant; without it, every tenant (each line names its tenant). */
  tenant: TenantNameSchema.optional(),
});
export type UsageQuery = z.infer<typeof UsageQuerySchema>;

export const UsageLineSchema = z.strictObject({
  tenant: z.string(),
  /** Set for group_by=adapter: `name@version`, the base model id, or null when `model` did not resolve. */
  adapter: z.string().nullable().optional(),
  /** Set for group_by=key. */
  key: z
    .strictObject({ id: z.string(), name: z.string().nullable(), prefix: z.string().nullable() })
    .optional(),
  /** Set for group_by=route: null outside a route. */
  route: z.string().nullable().optional(),
  variant: z.string().nullable().optional(),
  /** Set for group_by=day: `YYYY-MM-DD` (UTC). */
  day: z.string().optional(),
  /** Shadow copies of an experiment, on a line of their own. */
  shadow: z.boolean(),
  requests: z.number().int().nonnegative(),
  /** Answers with a status of 400 or more, the edge's own 429s included. */
  errors: z.number().int().nonnegative(),
  cancelled: z.number().int().nonnegative(),
  coldLoads: z.number().int().nonnegative(),
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  totalTokens: z.number().int().nonnegative(),
  meanLatencyMs: z.number().nonnegative().nullable(),
});
export type UsageLine = z.infer<typeof UsageLineSchema>;

export const UsageReportSchema = z.strictObject({
  object: z.literal("usage"),
  from: z.iso.datetime({ offset: true }),
  to: z.iso.datetime({ offset: true }),
  group_by: UsageGroupSchema,
  data: z.array(UsageLineSchema),
});
export type UsageReport = z.infer<typeof UsageReportSchema>;

/** The CSV form `npm run usage -- --csv` prints: one header row, then one row per line of the report. */
export function usageCsv(report: UsageReport): string {
  const dims: Record<UsageGroup, string[]> = {
    adapter: ["adapter"],
    key: ["key_id", "key_name"],
    route: ["route", "variant"],
    day: ["day"],
  };
  const header = [
    "tenant",
    ...dims[report.group_by],
    "shadow",
    "requests",
    "errors",
    "cancelled",
    "cold_loads",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "mean_latency_ms",
  ];
  const cell = (v: unknown): string => {
    const text = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const dimValues = (l: UsageLine): unknown[] => {
    switch (report.group_by) {
      case "adapter":
        return [l.adapter];
      case "key":
        return [l.key?.id, l.key?.name];
      case "route":
        return [l.route, l.variant];
      case "day":
        return [l.day];
    }
  };
  const rows = report.data.map((l) =>
    [
      l.tenant,
      ...dimValues(l),
      l.shadow,
      l.requests,
      l.errors,
      l.cancelled,
      l.coldLoads,
      l.promptTokens,
      l.completionTokens,
      l.totalTokens,
      l.meanLatencyMs === null ? null : l.meanLatencyMs.toFixed(1),
    ]
      .map(cell)
      .join(","),
  );
  return `${[header.join(","), ...rows].join("\n")}\n`;
}
