// Tenants and their API keys in D1. A key is stored only as its sha256; the secret leaves the edge once,
// in the creation response.
import { z } from "zod";
import type { ApiKeyInfo, Scope } from "../../../src/contracts/keys.ts";
import { ScopeSchema } from "../../../src/contracts/keys.ts";
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
});
type KeyRow = z.infer<typeof KeyRowSchema>;

export interface KeyPrincipal {
  keyId: string;
  tenant: string;
  scopes: Scope[];
  lastUsedAt: string | null;
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

  async createTenant(name: string): Promise<{ name: string; createdAt: string }> {
    const createdAt = nowIso();
    try {
      await this.#db
        .prepare("INSERT INTO tenants (name, created_at) VALUES (?, ?)")
        .bind(name, createdAt)
        .run();
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new AppError("conflict", `tenant ${JSON.stringify(name)} already exists`, { param: "name" });
      }
      throw error;
    }
    return { name, createdAt };
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
  }): Promise<ApiKeyInfo & { key: string }> {
    const secret = newSecret();
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
    };
    await this.#db
      .prepare(
        `INSERT INTO api_keys (id, tenant, name, key_hash, prefix, scopes, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
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
    const raw = await this.#db.prepare("SELECT * FROM api_keys WHERE key_hash = ?").bind(hash).first();
    if (raw === null) return null;
    const row = parseRow(KeyRowSchema, raw, "api_keys");
    if (!timingSafeEqualString(row.key_hash, hash)) return null;
    if (row.revoked_at !== null) return null;
    const expiresAt = row.expires_at === null ? null : Date.parse(row.expires_at);
    if (expiresAt !== null && expiresAt <= now.getTime()) return null;
    return {
      principal: { keyId: row.id, tenant: row.tenant, scopes: row.scopes, lastUsedAt: row.last_used_at },
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
