// API keys: tenant-scoped bearer tokens with scopes. Only a key's hash is stored; the secret is shown once.
import { z } from "zod";
import { RateLimitsSchema, StoredRateLimitsSchema } from "./limits.ts";
import { TenantNameSchema } from "./names.ts";

// `runner` is a fleet key: it lets a runner join the pool (README, "Runner fleets") and nothing else. Only the
// operator creates one, it is never combined with other scopes, and `admin` does not imply it.
export const SCOPES = ["infer", "publish", "admin", "runner"] as const;
export const ScopeSchema = z.enum(SCOPES);
export type Scope = z.infer<typeof ScopeSchema>;

export const CreateApiKeyRequestSchema = z.strictObject({
  /** Who the key acts for; admin keys of the deployment may create keys for any tenant. */
  tenant: TenantNameSchema,
  name: z.string().min(1).max(100),
  scopes: z
    .array(ScopeSchema)
    .min(1)
    .refine((s) => new Set(s).size === s.length, { message: "must not repeat a scope" })
    .refine((s) => !s.includes("runner") || s.length === 1, {
      message: 'must be ["runner"] alone for a fleet key (a runner key carries no other scope)',
    }),
  /** ISO 8601 expiry; absent means the key does not expire. */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  /** Requests and tokens per minute for this key; absent means none (the tenant's still apply). */
  limits: RateLimitsSchema.optional(),
});
export type CreateApiKeyRequest = z.infer<typeof CreateApiKeyRequestSchema>;

export const ApiKeyInfoSchema = z.strictObject({
  id: z.string().min(1),
  tenant: TenantNameSchema,
  name: z.string(),
  scopes: z.array(ScopeSchema),
  /** The first characters of the secret, to tell keys apart in listings. */
  prefix: z.string(),
  createdAt: z.iso.datetime({ offset: true }),
  expiresAt: z.iso.datetime({ offset: true }).nullable(),
  revokedAt: z.iso.datetime({ offset: true }).nullable(),
  lastUsedAt: z.iso.datetime({ offset: true }).nullable(),
  limits: StoredRateLimitsSchema,
});
export type ApiKeyInfo = z.infer<typeof ApiKeyInfoSchema>;

/** The creation response: the only time the secret is returned. */
export const CreateApiKeyResponseSchema = ApiKeyInfoSchema.extend({ key: z.string().min(20) });
export type CreateApiKeyResponse = z.infer<typeof CreateApiKeyResponseSchema>;

export const ApiKeyListSchema = z.strictObject({
  object: z.literal("list"),
  data: z.array(ApiKeyInfoSchema),
});
export type ApiKeyList = z.infer<typeof ApiKeyListSchema>;
