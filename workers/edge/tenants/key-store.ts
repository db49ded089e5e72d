// Tenants and their API keys in D1. A key is stored only as its sha256; the secret leaves the edge once,
// in the creation response.
import { z } from "zod";
import type { ApiKeyInfo, Scope } from "../../../src/contracts/keys.ts";
import { ScopeSchema } from "../../../src/contracts/keys.ts";
import {
  mergeLimits,
  NO_LIMITS,
  type RateLimits,
  type StoredRateLimits,
  type TenantInfo,
  type UpdateTenantRequest,
} from "../../../src/contracts/limits.ts";
import { sha256Hex, timingSafeEqualString, toHex } from "../../../src/crypto.ts";
import { AppError } from "../../../src/errors.ts";
import { isUniqueViolation, nowIso, parseRow, parseRows } from "../common/d1.ts";
import { announce } from "../common/invalidation.ts";

const KEY_PREFIX = "lek_";
/** Enough of the secret to tell keys apart in a listing, far too little to guess the rest. */
const DISPLAY_CHARS = 12;

const scopesColumn = z
  .string()
  .transform((text) => JSON.parse(text) as unknown)
  .pipe(z.array(ScopeSchema));

const KeyRowSchema = z.object({
  id: z.string(),
  tenant: z.string(),
  name: z.string(),
  key_hash: z.string(),
  prefix: z.string(),
  scopes: scopesColumn,
  created_at: z.string(),
  expires_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
  requests_per_minute: z.number().int().positive().nullable(),
  tokens_per_minute: z.number().int().positive().nullable(),
});
type KeyRow = z.infer<typeof KeyRowSchema>;

const TenantRowSchema = z.object({
  name: z.string(),
  created_at: z.string(),
  requests_per_minute: z.number().int().positive().nullable(),
  tokens_per_minute: z.number().int().positive().nullable(),
  monthly_token_budget: z.number().int().positive().nullable(),
});
type TenantRow = z.infer<typeof TenantRowSchema>;

/** A live key's row with its tenant's limits beside it: one read gives auth everything the limits need. */
const LiveKeyRowSchema = KeyRowSchema.extend({
  tenant_requests_per_minute: z.number().int().positive().nullable(),
  tenant_tokens_per_minute: z.number().int().positive().nullable(),
  tenant_monthly_token_budget: z.number().int().positive().nullable(),
});

/** What limits a request with this key: its own, its tenant's, and the tenant's monthly budget. */
export interface AppliedLimits {
  key: StoredRateLimits;
  tenant: StoredRateLimits;
  monthlyTokenBudget: number | null;
}

const limitsOf = (row: { requests_per_minute: number | null; tokens_per_minute: number | null }) => ({
  requestsPerMinute: row.requests_per_minute,
  tokensPerMinute: row.tokens_per_minute,
});

function tenantInfo(row: TenantRow): TenantInfo {
  return {
    name: row.name,
    createdAt: row.created_at,
    limits: limitsOf(row),
    monthlyTokenBudget: row.monthly_token_budget,
  };
}

export interface KeyPrincipal {
  keyId: string;
  tenant: string;
  scopes: Scope[];
  lastUsedAt: string | null;
  limits: AppliedLimits;
}

/** A key that was live when read; `expiresAt` (epoch ms) travels along so a cached copy still expires. */
export interface LiveKey {
  principal: KeyPrincipal;
  expiresAt: number | null;
}

function toInfo(row: KeyRow): ApiKeyInfo {
  return {
    id: row.id,
    tenant: row.tenant,
    name: row.name,
    scopes: row.scopes,
    prefix: row.prefix,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    limits: limitsOf(row),
  };
}

function newSecret(): string {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return `${KEY_PREFIX}${toHex(bytes)}`;
}

export class KeyStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  async createTenant(input: {
    name: string;
    limits?: RateLimits | undefined;
    monthlyTokenBudget?: number | null | undefined;
  }): Promise<TenantInfo> {
    const { name } = input;
    const limits = mergeLimits(NO_LIMITS, input.limits);
    const row: TenantRow = {
      name,
      created_at: nowIso(),
      requests_per_minute: limits.requestsPerMinute,
      tokens_per_minute: limits.tokensPerMinute,
      monthly_token_budget: input.monthlyTokenBudget ?? null,
    };
    try {
      await this.#db
        .prepare(
          `INSERT INTO tenants (name, created_at, requests_per_minute, tokens_per_minute, monthly_token_budget)
           VALUES (?, ?, ?, ?, ?)`,
        )
        .bind(
          row.name,
          row.created_at,
          row.requests_per_minute,
          row.tokens_per_minute,
          row.monthly_token_budget,
        )
        .run();
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new AppError("conflict", `tenant ${JSON.stringify(name)} already exists`, { param: "name" });
      }
      throw error;
    }
    return tenantInfo(row);
  }

  async tenant(name: string): Promise<TenantInfo> {
    const raw = await this.#db.prepare("SELECT * FROM tenants WHERE name = ?").bind(name).first();
    if (raw === null) {
      throw new AppError("not_found", `tenant ${JSON.stringify(name)} does not exist`, { param: "name" });
    }
    return tenantInfo(parseRow(TenantRowSchema, raw, "tenants"));
  }

  /**
   * Changes a tenant's limits or budget. Its keys carry the tenant's limits in the key cache, so each is
   * announced: this isolate applies the change at once, others within KEY_CACHE_MS (tenants/key-cache.ts).
   */
  async updateTenant(name: string, update: UpdateTenantRequest): Promise<TenantInfo> {
    const current = await this.tenant(name);
    const limits = mergeLimits(current.limits, update.limits);
    const budget =
      update.monthlyTokenBudget === undefined ? current.monthlyTokenBudget : update.monthlyTokenBudget;
    const [updated, keys] = await this.#db.batch([
      this.#db
        .prepare(
          `UPDATE tenants SET requests_per_minute = ?, tokens_per_minute = ?, monthly_token_budget = ?
           WHERE name = ? RETURNING *`,
        )
        .bind(limits.requestsPerMinute, limits.tokensPerMinute, budget, name),
      this.#db.prepare("SELECT key_hash FROM api_keys WHERE tenant = ?").bind(name),
    ]);
    const row = updated?.results[0];
    if (row === undefined) {
      throw new AppError("not_found", `tenant ${JSON.stringify(name)} does not exist`, { param: "name" });
    }
    for (const key of parseRows(z.object({ key_hash: z.string() }), keys?.results ?? [], "api_keys")) {
      announce({ kind: "key", hash: key.key_hash });
    }
    return tenantInfo(parseRow(TenantRowSchema, row, "tenants"));
  }

  async tenantExists(name: string): Promise<boolean> {
    const row = await this.#db.prepare("SELECT 1 AS found FROM tenants WHERE name = ?").bind(name).first();
    return row !== null;
  }

  async createKey(input: {
    tenant: string;
    name: string;
    scopes: Scope[];
    expiresAt?: string | undefined;
    limits?: RateLimits | undefined;
  }): Promise<ApiKeyInfo & { key: string }> {
    const secret = newSecret();
    const limits = mergeLimits(NO_LIMITS, input.limits);
    const row: KeyRow = {
      id: crypto.randomUUID(),
      tenant: input.tenant,
      name: input.name,
      key_hash: await sha256Hex(secret),
      prefix: secret.slice(0, DISPLAY_CHARS),
      scopes: input.scopes,
      created_at: nowIso(),
      expires_at: input.expiresAt ? new Date(input.expiresAt).toISOString() : null,
      revoked_at: null,
      last_used_at: null,
      requests_per_minute: limits.requestsPerMinute,
      tokens_per_minute: limits.tokensPerMinute,
    };
    await this.#db
      .prepare(
        `INSERT INTO api_keys (id, tenant, name, key_hash, prefix, scopes, created_at, expires_at,
                               requests_per_minute, tokens_per_minute)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .bind(
        row.id,
        row.tenant,
        row.name,
        row.key_hash,
        row.prefix,
        JSON.stringify(row.scopes),
        row.created_at,
        row.expires_at,
        row.requests_per_minute,
        row.tokens_per_minute,
      )
      .run();
    return { ...toInfo(row), key: secret };
  }

  /** The live key whose secret this is, or null. The secret never reaches D1, only its hash. */
  async authenticate(secret: string, now = new Date()): Promise<KeyPrincipal | null> {
    return (await this.liveKey(await sha256Hex(secret), now))?.principal ?? null;
  }

  /**
   * The key with this hash when it is live at `now`, or null. The stored hash is compared again in constant
   * time, so a hit and a near-miss cost the same.
   */
  async liveKey(hash: string, now = new Date()): Promise<LiveKey | null> {
    const raw = await this.#db
      .prepare(
        `SELECT k.*, t.requests_per_minute AS tenant_requests_per_minute,
                t.tokens_per_minute AS tenant_tokens_per_minute,
                t.monthly_token_budget AS tenant_monthly_token_budget
         FROM api_keys k JOIN tenants t ON t.name = k.tenant WHERE k.key_hash = ?`,
      )
      .bind(hash)
      .first();
    if (raw === null) return null;
    const row = parseRow(LiveKeyRowSchema, raw, "api_keys");
    if (!timingSafeEqualString(row.key_hash, hash)) return null;
    if (row.revoked_at !== null) return null;
    const expiresAt = row.expires_at === null ? null : Date.parse(row.expires_at);
    if (expiresAt !== null && expiresAt <= now.getTime()) return null;
    return {
      principal: {
        keyId: row.id,
        tenant: row.tenant,
        scopes: row.scopes,
        lastUsedAt: row.last_used_at,
        limits: {
          key: limitsOf(row),
          tenant: {
            requestsPerMinute: row.tenant_requests_per_minute,
            tokensPerMinute: row.tenant_tokens_per_minute,
          },
          monthlyTokenBudget: row.tenant_monthly_token_budget,
        },
      },
      expiresAt,
    };
  }

  async touch(keyId: string): Promise<void> {
    await this.#db.prepare("UPDATE api_keys SET last_used_at = ? WHERE id = ?").bind(nowIso(), keyId).run();
  }

  async listKeys(tenant: string): Promise<ApiKeyInfo[]> {
    const { results } = await this.#db
      .prepare("SELECT * FROM api_keys WHERE tenant = ? ORDER BY created_at, id")
      .bind(tenant)
      .all();
    return parseRows(KeyRowSchema, results, "api_keys").map(toInfo);
  }

  /** Changes a key's limits (absent keeps, null clears); another tenant's key id reads as not found. */
  async updateKeyLimits(tenant: string, keyId: string, update: RateLimits): Promise<ApiKeyInfo> {
    const raw = await this.#db
      .prepare("SELECT * FROM api_keys WHERE id = ? AND tenant = ?")
      .bind(keyId, tenant)
      .first();
    if (raw === null) {
      throw new AppError("not_found", `key ${JSON.stringify(keyId)} does not exist in tenant ${tenant}`, {
        param: "id",
      });
    }
    const limits = mergeLimits(limitsOf(parseRow(KeyRowSchema, raw, "api_keys")), update);
    const updated = await this.#db
      .prepare(
        "UPDATE api_keys SET requests_per_minute = ?, tokens_per_minute = ? WHERE id = ? AND tenant = ? RETURNING *",
      )
      .bind(limits.requestsPerMinute, limits.tokensPerMinute, keyId, tenant)
      .first();
    const row = parseRow(KeyRowSchema, updated, "api_keys");
    // The key cache holds the limits with the key: this isolate sees the change now, others within KEY_CACHE_MS.
    announce({ kind: "key", hash: row.key_hash });
    return toInfo(row);
  }

  /** Revokes a key of this tenant; another tenant's key id reads as not found. */
  async revokeKey(tenant: string, keyId: string): Promise<ApiKeyInfo> {
    const raw = await this.#db
      .prepare(
        `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND tenant = ? RETURNING *`,
      )
      .bind(nowIso(), keyId, tenant)
      .first();
    if (raw === null) {
      throw new AppError("not_found", `key ${JSON.stringify(keyId)} does not exist in tenant ${tenant}`, {
        param: "id",
      });
    }
    const row = parseRow(KeyRowSchema, raw, "api_keys");
    // This isolate stops accepting the key now; others within KEY_CACHE_MS (tenants/key-cache.ts).
    announce({ kind: "key", hash: row.key_hash });
    return toInfo(row);
  }
}
