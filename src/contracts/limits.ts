// Rate limits and quotas as the admin API takes and shows them. Limits are per minute, as OpenAI states its
// own (RPM, TPM); a missing limit means none. In an update, an absent field leaves the limit as it is and
// `null` removes it (JSON Merge Patch).
import { z } from "zod";

const perMinute = z.number().int("must be an integer").min(1, "must be >= 1").max(1_000_000_000);

export const RateLimitsSchema = z.strictObject({
  /** Requests admitted per minute (the `x-ratelimit-*-requests` headers). */
  requestsPerMinute: perMinute.nullable().optional(),
  /** Prompt plus completion tokens per minute, counted from what the runner reports (`x-ratelimit-*-tokens`). */
  tokensPerMinute: perMinute.nullable().optional(),
});
export type RateLimits = z.infer<typeof RateLimitsSchema>;

/** Limits as stored and shown: every field present, null where there is no limit. */
export const StoredRateLimitsSchema = z.strictObject({
  requestsPerMinute: z.number().int().positive().nullable(),
  tokensPerMinute: z.number().int().positive().nullable(),
});
export type StoredRateLimits = z.infer<typeof StoredRateLimitsSchema>;

export const NO_LIMITS: StoredRateLimits = { requestsPerMinute: null, tokensPerMinute: null };

/** Prompt plus completion tokens per calendar month (UTC); null means no budget. */
export const MonthlyTokenBudgetSchema = z
  .number()
  .int("must be an integer")
  .min(1, "must be >= 1")
  .max(Number.MAX_SAFE_INTEGER)
  .nullable();

/** `PATCH /admin/keys/{id}`: what a key's manager may change after creation. */
export const UpdateApiKeyRequestSchema = z.strictObject({ limits: RateLimitsSchema });
export type UpdateApiKeyRequest = z.infer<typeof UpdateApiKeyRequestSchema>;

/** `PATCH /admin/tenants/{name}` (operator only): the tenant's own limits and its monthly budget. */
export const UpdateTenantRequestSchema = z.strictObject({
  limits: RateLimitsSchema.optional(),
  monthlyTokenBudget: MonthlyTokenBudgetSchema.optional(),
});
export type UpdateTenantRequest = z.infer<typeof UpdateTenantRequestSchema>;

export const TenantInfoSchema = z.strictObject({
  name: z.string(),
  createdAt: z.iso.datetime({ offset: true }),
  limits: StoredRateLimitsSchema,
  monthlyTokenBudget: z.number().int().positive().nullable(),
});
export type TenantInfo = z.infer<typeof TenantInfoSchema>;

/** Applies an update to stored limits: absent keeps, null clears. */
export function mergeLimits(stored: StoredRateLimits, update: RateLimits | undefined): StoredRateLimits {
  if (update === undefined) return stored;
  return {
    requestsPerMinute:
      update.requestsPerMinute === undefined ? stored.requestsPerMinute : update.requestsPerMinute,
    tokensPerMinute: update.tokensPerMinute === undefined ? stored.tokensPerMinute : update.tokensPerMinute,
  };
}
