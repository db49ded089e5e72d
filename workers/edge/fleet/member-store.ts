// Fleet members in D1 (migrations/0006_runner_members.sql): join, heartbeat, drain, leave, and the live set.
// A member whose lease lapsed is not live; rows past their lease are deleted by the next join or heartbeat,
// so a crashed runner leaves the table on its own. Joins, drains, departures and lapses are audited in the
// same batch as the change, under the tenant of the fleet key the member joined with (the operator's own
// tenant for its fleet keys), without the member's URL: the audit trail is a tenant admin's to read, and
// runners are named by id, never by address. A store never reaches for a cache
// (docs/architecture.md#layers): callers forget the members cache after a write.
import { z } from "zod";
import { LINEAR_KINDS } from "../../../src/contracts/base-model.ts";
import {
  type HeartbeatRequest,
  type JoinRequest,
  type MemberResident,
  MemberResidentSchema,
} from "../../../src/contracts/fleet.ts";
import { toHex } from "../../../src/crypto.ts";
import { AppError } from "../../../src/errors.ts";
import type { AuditAction } from "../common/audit.ts";
import { parseRow, parseRows } from "../common/d1.ts";

const json = <T extends z.ZodType>(schema: T) =>
  z
    .string()
    .transform((text) => JSON.parse(text) as unknown)
    .pipe(schema);

const MemberRowSchema = z.object({
  id: z.string(),
  url: z.string(),
  kind: z.enum(["runner", "vllm"]),
  base_model: z.string(),
  base_model_fingerprint: z.string().nullable(),
  capacity: z.number(),
  max_lora_rank: z.number().int(),
  target_modules: json(z.array(z.enum(LINEAR_KINDS))),
  slots: z.number().int(),
  context: z.number().int(),
  version: z.string(),
  key_id: z.string(),
  joined_at: z.number().int(),
  heartbeat_at: z.number().int(),
  lease_until: z.number().int(),
  draining_at: z.number().int().nullable(),
  in_flight: z.number().int(),
  resident: json(z.array(MemberResidentSchema)),
});

export interface Member {
  id: string;
  url: string;
  kind: "runner" | "vllm";
  baseModel: string;
  baseModelFingerprint: string | null;
  capacity: number;
  maxLoraRank: number;
  targetModules: (typeof LINEAR_KINDS)[number][];
  slots: number;
  context: number;
  version: string;
  keyId: string;
  joinedAt: number;
  heartbeatAt: number;
  leaseUntil: number;
  drainingAt: number | null;
  inFlight: number;
  resident: MemberResident[];
}

function toMember(row: z.output<typeof MemberRowSchema>): Member {
  return {
    id: row.id,
    url: row.url,
    kind: row.kind,
    baseModel: row.base_model,
    baseModelFingerprint: row.base_model_fingerprint,
    capacity: row.capacity,
    maxLoraRank: row.max_lora_rank,
    targetModules: row.target_modules,
    slots: row.slots,
    context: row.context,
    version: row.version,
    keyId: row.key_id,
    joinedAt: row.joined_at,
    heartbeatAt: row.heartbeat_at,
    leaseUntil: row.lease_until,
    drainingAt: row.draining_at,
    inFlight: row.in_flight,
    resident: row.resident,
  };
}

function newMemberId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `rm_${toHex(bytes)}`;
}

function unknownMember(id: string): AppError {
  return new AppError(
    "not_found",
    `runner ${id}: is not a member (it never joined, left, or its lease lapsed; join again)`,
    { param: "id" },
  );
}

export class MemberStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /**
   * One audit entry for each member `where` selects as the statement runs (so it goes before the change in
   * its batch, or after it for a join). `where` uses ?3 onwards for `binds`.
   */
  #audit(action: AuditAction, actor: string, now: number, where: string, ...binds: unknown[]) {
    const iso = (col: string) => `strftime('%Y-%m-%dT%H:%M:%fZ', ${col} / 1000.0, 'unixepoch')`;
    // a drain entry is written just before the row is marked, so it states the mark it is about to set
    const drainingAt =
      action === "runner_drain"
        ? "?2"
        : `CASE WHEN m.draining_at IS NULL THEN NULL ELSE ${iso("m.draining_at")} END`;
    return this.#db
      .prepare(
        `INSERT INTO audit_log (tenant, actor, action, target, details, created_at)
         SELECT k.tenant, ?1, '${action}', m.id,
           json_object('kind', m.kind, 'baseModel', m.base_model, 'capacity', m.capacity,
             'maxLoraRank', m.max_lora_rank, 'version', m.version, 'joinedAt', ${iso("m.joined_at")},
             'heartbeatAt', ${iso("m.heartbeat_at")}, 'leaseUntil', ${iso("m.lease_until")},
             'drainingAt', ${drainingAt}),
           ?2
         FROM runner_members m LEFT JOIN api_keys k ON k.id = m.key_id
         WHERE ${where}`,
      )
      .bind(actor, new Date(now).toISOString(), ...binds);
  }

  /** Drops the members whose lease lapsed, auditing each (actor `edge`: nobody asked, the lease ran out). */
  #dropLapsed(now: number): D1PreparedStatement[] {
    return [
      this.#audit("runner_lapse", "edge", now, "m.lease_until <= ?3", now),
      this.#db.prepare("DELETE FROM runner_members WHERE lease_until <= ?").bind(now),
    ];
  }

  /** Drops lapsed members now (a join or heartbeat does it too), so their lapse is audited without one. */
  async dropLapsed(now: number): Promise<void> {
    await this.#db.batch(this.#dropLapsed(now));
  }

  /** Joins (or joins again from the same URL, replacing the old row and its drain mark). */
  async join(request: JoinRequest, keyId: string, now: number, leaseMs: number): Promise<Member> {
    const id = newMemberId();
    const results = await this.#db.batch([
      ...this.#dropLapsed(now),
      this.#db
        .prepare(
          `INSERT INTO runner_members (id, url, kind, base_model, base_model_fingerprint, capacity, max_lora_rank,
             target_modules, slots, context, version, key_id, joined_at, heartbeat_at, lease_until, draining_at,
             in_flight, resident)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, NULL, 0, '[]')
           ON CONFLICT (url) DO UPDATE SET id = ?1, kind = ?3, base_model = ?4, base_model_fingerprint = ?5,
             capacity = ?6, max_lora_rank = ?7, target_modules = ?8, slots = ?9, context = ?10, version = ?11,
             key_id = ?12, joined_at = ?13, heartbeat_at = ?13, lease_until = ?14, draining_at = NULL,
             in_flight = 0, resident = '[]'
           RETURNING *`,
        )
        .bind(
          id,
          request.url,
          request.kind,
          request.baseModel,
          request.baseModelFingerprint,
          request.capacity,
          request.maxLoraRank,
          JSON.stringify(request.targetModules),
          request.slots,
          request.context,
          request.version,
          keyId,
          now,
          now + leaseMs,
        ),
      this.#audit("runner_join", `key:${keyId}`, now, "m.id = ?3", id),
    ]);
    return toMember(parseRow(MemberRowSchema, results[2]?.results[0], "runner_members"));
  }

  /** Renews the lease of a member that still holds one; a lapsed member must join again (404). */
  async heartbeat(
    id: string,
    beat: HeartbeatRequest,
    now: number,
    leaseMs: number,
    keyId: string,
  ): Promise<Member> {
    const results = await this.#db.batch([
      ...this.#dropLapsed(now),
      // a member that drains itself (SIGTERM) says so here: audited the first time only
      this.#audit(
        "runner_drain",
        `key:${keyId}`,
        now,
        "m.id = ?3 AND m.lease_until > ?4 AND m.draining_at IS NULL AND ?5 = 1",
        id,
        now,
        beat.draining ? 1 : 0,
      ),
      this.#db
        .prepare(
          `UPDATE runner_members SET heartbeat_at = ?2, lease_until = ?3, in_flight = ?4, resident = ?5,
             draining_at = CASE WHEN ?6 = 1 THEN COALESCE(draining_at, ?2) ELSE draining_at END
           WHERE id = ?1 AND lease_until > ?2
           RETURNING *`,
        )
        .bind(id, now, now + leaseMs, beat.inFlight, JSON.stringify(beat.resident), beat.draining ? 1 : 0),
    ]);
    const row = results[3]?.results[0];
    if (row === undefined) throw unknownMember(id);
    return toMember(parseRow(MemberRowSchema, row, "runner_members"));
  }

  /** Marks a live member draining (the operator's word); draining twice keeps, and audits, the first time. */
  async drain(id: string, now: number): Promise<Member> {
    const [, updated] = await this.#db.batch([
      this.#audit(
        "runner_drain",
        "operator",
        now,
        "m.id = ?3 AND m.lease_until > ?4 AND m.draining_at IS NULL",
        id,
        now,
      ),
      this.#db
        .prepare(
          `UPDATE runner_members SET draining_at = COALESCE(draining_at, ?2)
           WHERE id = ?1 AND lease_until > ?2 RETURNING *`,
        )
        .bind(id, now),
    ]);
    const row = updated?.results[0];
    if (row === undefined) throw unknownMember(id);
    return toMember(parseRow(MemberRowSchema, row, "runner_members"));
  }

  /** Removes a member; `keyId` null is the operator, otherwise only the key it joined with may. */
  async leave(id: string, keyId: string | null, now: number): Promise<Member> {
    const [, deleted] = await this.#db.batch([
      this.#audit(
        "runner_leave",
        keyId === null ? "operator" : `key:${keyId}`,
        now,
        "m.id = ?3 AND (?4 IS NULL OR m.key_id = ?4)",
        id,
        keyId,
      ),
      this.#db
        .prepare("DELETE FROM runner_members WHERE id = ?1 AND (?2 IS NULL OR key_id = ?2) RETURNING *")
        .bind(id, keyId),
    ]);
    const row = deleted?.results[0];
    if (row === undefined) throw unknownMember(id);
    return toMember(parseRow(MemberRowSchema, row, "runner_members"));
  }

  async get(id: string, now: number): Promise<Member | null> {
    const row = await this.#db
      .prepare("SELECT * FROM runner_members WHERE id = ? AND lease_until > ?")
      .bind(id, now)
      .first();
    return row === null ? null : toMember(parseRow(MemberRowSchema, row, "runner_members"));
  }

  /** Every member holding a lease, draining ones included, oldest first (their pool positions). */
  async current(now: number): Promise<Member[]> {
    const { results } = await this.#db
      .prepare("SELECT * FROM runner_members WHERE lease_until > ? ORDER BY joined_at, id")
      .bind(now)
      .all();
    return parseRows(MemberRowSchema, results, "runner_members").map(toMember);
  }
}
