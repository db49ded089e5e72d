// Wire shapes of the edge's admin API that src/contracts does not hold yet: the publish script imports them
// too. They use zod and src/ only, so any runtime can share them.
import { z } from "zod";
import { BaseModelSpecSchema } from "./base-model.ts";
import { Sha256Schema } from "./digest.ts";
import { MonthlyTokenBudgetSchema, RateLimitsSchema } from "./limits.ts";
import { AdapterManifestSchema } from "./manifest.ts";
import { AdapterNameSchema, AliasNameSchema, TenantNameSchema } from "./names.ts";

export { Sha256Schema };

const version = z.number().int().min(1);

/** Base model ids may look like Hugging Face repo ids (`org/model`), but never contain "@". */
export const BaseModelIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/,
    "must be 1..128 of A-Z a-z 0-9 . _ / -, starting with a letter or digit",
  );

export const CreateTenantRequestSchema = z.strictObject({
  name: TenantNameSchema,
  /** The tenant's own per-minute limits, over all its keys; absent means none. */
  limits: RateLimitsSchema.optional(),
  /** Prompt plus completion tokens per calendar month (UTC); absent means no budget. */
  monthlyTokenBudget: MonthlyTokenBudgetSchema.optional(),
});

export const UploadResponseSchema = z.strictObject({
  upload: z.uuid(),
  sha256: Sha256Schema,
  sizeBytes: z.number().int().nonnegative(),
});
export type UploadResponse = z.infer<typeof UploadResponseSchema>;

export const CreateMultipartRequestSchema = z.strictObject({ sha256: Sha256Schema });
export const CreateMultipartResponseSchema = z.strictObject({
  upload: z.uuid(),
  uploadId: z.string().min(1),
});
export const UploadedPartSchema = z.strictObject({
  partNumber: z.number().int().min(1).max(10_000),
  etag: z.string().min(1),
});
const PART_ORDER = "list parts in order 1, 2, 3, … with none skipped or repeated";

export const CompleteMultipartRequestSchema = z.strictObject({
  uploadId: z.string().min(1),
  parts: z
    .array(UploadedPartSchema)
    .min(1, "must list every uploaded part")
    .superRefine((parts, ctx) => {
      // The file is the parts in order: a gap or a repeat would complete into other bytes than were sent.
      const i = parts.findIndex((p, at) => p.partNumber !== at + 1);
      const part = parts[i];
      if (part === undefined) return;
      ctx.addIssue({
        code: "custom",
        path: [i, "partNumber"],
        input: part.partNumber,
        message:
          part.partNumber > i + 1
            ? `part ${i + 1} is missing: ${PART_ORDER}`
            : `must be ${i + 1}: ${PART_ORDER}`,
      });
    }),
});

/**
 * A decimal integer where text carries a number (a path segment, a query value): digits only, so `0x1`,
 * `1e3`, `01`, ` 1` and `1.0` are refused instead of read as some other number.
 */
export function decimalIntegerText(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (
    z
      .string()
      .regex(/^(0|[1-9][0-9]*)$/, "must be a decimal integer (digits only, no leading zeros)")
      .transform(Number)
      // Integral by the pattern; exact because `max` is at most Number.MAX_SAFE_INTEGER.
      .pipe(
        z
          .number()
          .min(min, `must be >= ${min}`)
          .max(Math.min(max, Number.MAX_SAFE_INTEGER), `must be <= ${max}`),
      )
  );
}

/**
 * Upper bounds on a base model's shape, checked before its spec is built (which allocates per layer and
 * module): generous, the largest open models are far below each, yet a config cannot make the edge allocate
 * without bound. The stored spec stays well under D1's row size at these bounds.
 */
export const BASE_MODEL_BOUNDS = {
  num_hidden_layers: 512,
  hidden_size: 65_536,
  intermediate_size: 524_288,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 4096,
  vocab_size: 4_194_304,
} as const;

/** Only numbers are judged here; anything else is left to the full config check, which names every problem. */
function atMost(max: number) {
  return z.unknown().refine((v) => typeof v !== "number" || v <= max, { message: `must be <= ${max}` });
}

export const BaseModelBoundsSchema = z.looseObject({
  num_hidden_layers: atMost(BASE_MODEL_BOUNDS.num_hidden_layers),
  hidden_size: atMost(BASE_MODEL_BOUNDS.hidden_size),
  intermediate_size: atMost(BASE_MODEL_BOUNDS.intermediate_size),
  num_attention_heads: atMost(BASE_MODEL_BOUNDS.num_attention_heads),
  num_key_value_heads: atMost(BASE_MODEL_BOUNDS.num_key_value_heads),
  head_dim: atMost(BASE_MODEL_BOUNDS.head_dim),
  vocab_size: atMost(BASE_MODEL_BOUNDS.vocab_size),
});

export const PublishVersionRequestSchema = z.strictObject({
  /** The id returned by POST /admin/uploads (or a completed multipart upload). */
  upload: z.uuid(),
  base: BaseModelIdSchema,
  /** adapter_config.json exactly as PEFT wrote it. */
  config: z.record(z.string(), z.unknown()),
  alias: AliasNameSchema.optional(),
  description: z.string().max(2000).optional(),
  metrics: z.record(z.string(), z.number().finite()).optional(),
  parentVersion: version.optional(),
});
export type PublishVersionRequest = z.infer<typeof PublishVersionRequestSchema>;

export const VersionResponseSchema = z.strictObject({
  name: AdapterNameSchema,
  version,
  weightsSha256: Sha256Schema,
  adapterId: Sha256Schema,
  sizeBytes: z.number().int().nonnegative(),
  baseModel: z.string(),
  createdAt: z.string(),
  yankedAt: z.string().nullable(),
  /** Aliases that point at this version now. */
  aliases: z.array(z.string()),
  manifest: AdapterManifestSchema,
  /** Set when a runner refused the weights: the version answers 422 with this reason. */
  unservable: z.strictObject({ reason: z.string(), at: z.string() }).nullable(),
});
export type VersionResponse = z.infer<typeof VersionResponseSchema>;

export const AdapterResponseSchema = z.strictObject({
  name: AdapterNameSchema,
  baseModel: z.string(),
  description: z.string().nullable(),
  createdAt: z.string(),
  latest: version.nullable(),
  aliases: z.record(z.string(), version),
});

export const MoveAliasRequestSchema = z.strictObject({
  version,
  /** Compare-and-set: the version the alias must be at now, or null for "must not exist yet". */
  expected: version.nullable().optional(),
});

export const BaseModelResponseSchema = z.strictObject({
  id: z.string(),
  fingerprint: Sha256Schema,
  architecture: z.string(),
  createdAt: z.string(),
  /** The full spec, so a publisher validates locally exactly as the edge will. */
  spec: BaseModelSpecSchema,
});
export type BaseModelResponse = z.infer<typeof BaseModelResponseSchema>;
