// Wire shapes of the edge's admin API that src/contracts does not hold yet: the publish script imports them
// too. They use zod and src/ only, so any runtime can share them.
import { z } from "zod";
import { BaseModelSpecSchema } from "./base-model.ts";
import { Sha256Schema } from "./digest.ts";
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

export const CreateTenantRequestSchema = z.strictObject({ name: TenantNameSchema });

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
export const CompleteMultipartRequestSchema = z.strictObject({
  uploadId: z.string().min(1),
  parts: z.array(UploadedPartSchema).min(1, "must list every uploaded part"),
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
