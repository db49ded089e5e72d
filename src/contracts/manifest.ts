// The manifest of one published adapter version: immutable once written, as every version is
// (docs/architecture.md#invariants), stored in D1 and beside the weights in R2, and read back through this
// schema, never cast.
import { z } from "zod";
import { Sha256Schema } from "./digest.ts";
import { AdapterNameSchema } from "./names.ts";

const sha256 = Sha256Schema;

export const ManifestModuleSchema = z.strictObject({
  /** Full module path, e.g. "model.layers.0.self_attn.q_proj". */
  module: z.string().min(1),
  rank: z.number().int().positive(),
  alpha: z.number().finite(),
  scale: z.number().finite(),
});
export type ManifestModule = z.infer<typeof ManifestModuleSchema>;

export const AdapterManifestSchema = z.strictObject({
  name: AdapterNameSchema,
  version: z.number().int().min(1),
  /** sha256 of adapter_model.safetensors as uploaded. */
  weightsSha256: sha256,
  /** What the runner caches by: weights and every output-relevant config fact (src/adapters/validate.ts). */
  adapterId: sha256,
  sizeBytes: z.number().int().nonnegative(),
  dtype: z.enum(["F32", "F16", "BF16"]),
  baseModel: z.strictObject({ id: z.string().min(1), fingerprint: sha256 }),
  targetModules: z.array(z.string()),
  modules: z.array(ManifestModuleSchema).min(1),
  maxRank: z.number().int().positive(),
  rslora: z.boolean(),
  /** adapter_config.json exactly as published, so the version can be downloaded as PEFT wrote it. */
  peftConfig: z.record(z.string(), z.unknown()),
  createdBy: z.string().min(1),
  createdAt: z.iso.datetime({ offset: true }),
  metrics: z.record(z.string(), z.number().finite()).optional(),
  parentVersion: z.number().int().min(1).nullable(),
  description: z.string().max(2000).optional(),
});
export type AdapterManifest = z.infer<typeof AdapterManifestSchema>;
