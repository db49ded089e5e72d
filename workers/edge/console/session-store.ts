// Console sessions in D1 (migration 0003). A session lives only while the API key that opened it is live
// and keeps scope admin: every lookup joins api_keys, so revoking the key signs its sessions out.
import { z } from "zod";
import { ScopeSchema } from "../../../src/contracts/keys.ts";
import { sha256Hex, toHex } from "../../../src/crypto.ts";
import { nowIso, parseRow } from "../common/d1.ts";

/** A working day: long enough not to nag, short enough that a forgotten browser is not signed in for good. */
export const SESSION_TTL_S = 8 * 60 * 60;

export interface ConsoleSession {
  tenant: string;
  keyId: string;
  csrfToken: string;
  expiresAt: string;
}

const SessionRowSchema = z.object({
  tenant: z.string(),
  key_id: z.string(),
  csrf_token: z.string(),
  expires_at: z.string(),
  scopes: z
    .string()
    .transform((text) => JSON.parse(text) as unknown)
    .pipe(z.array(ScopeSchema)),
  revoked_at: z.string().nullable(),
  key_expires_at: z.string().nullable(),
});

export function randomToken(): string {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return toHex(bytes);
}

export class SessionStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /** Opens a session for a key; returns the cookie secret (never stored) and the session. */
  async open(keyId: string, tenant: string, now = new Date()): Promise<{ secret: string } & ConsoleSession> {
    const secret = randomToken();
    const session = {
      tenant,
      keyId,
      csrfToken: randomToken(),
      expiresAt: new Date(now.getTime() + SESSION_TTL_S * 1000).toISOString(),
    };
    await this.#db.batch([
      // Sign-ins are rare; sweeping expired rows here keeps the table small without a cron trigger.
      this.#db.prepare("DELETE FROM console_sessions WHERE expires_at <= ?").bind(now.toISOString()),
      this.#db
        .prepare(
          `INSERT INTO console_sessions (token_hash, key_id, tenant, csrf_token, created_at, expires_at)
           VALUES (?, ?, ?, ?, ?, ?)`,
        )
        .bind(await sha256Hex(secret), keyId, tenant, session.csrfToken, nowIso(), session.expiresAt),
    ]);
    return { secret, ...session };
  }

  /** The live session for a cookie secret, or null (unknown, expired, or its key revoked, expired or demoted). */
  async find(secret: string, now = new Date()): Promise<ConsoleSession | null> {
    const raw = await this.#db
      .prepare(
        `SELECT s.tenant, s.key_id, s.csrf_token, s.expires_at, k.scopes, k.revoked_at,
           k.expires_at AS key_expires_at
         FROM console_sessions s JOIN api_keys k ON k.id = s.key_id AND k.tenant = s.tenant
         WHERE s.token_hash = ?`,
      )
      .bind(await sha256Hex(secret))
      .first();
    if (raw === null) return null;
    const row = parseRow(SessionRowSchema, raw, "console_sessions");
    const iso = now.toISOString();
    if (row.expires_at <= iso || row.revoked_at !== null || !row.scopes.includes("admin")) return null;
    if (row.key_expires_at !== null && new Date(row.key_expires_at) <= now) return null;
    return { tenant: row.tenant, keyId: row.key_id, csrfToken: row.csrf_token, expiresAt: row.expires_at };
  }

  async close(secret: string): Promise<void> {
    await this.#db
      .prepare("DELETE FROM console_sessions WHERE token_hash = ?")
      .bind(await sha256Hex(secret))
      .run();
  }
}
