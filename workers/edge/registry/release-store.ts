// What moves after a publish: aliases (compare-and-set) and yanks. A version itself never changes; a yank
// only marks it, and is refused while an alias points at it, so an alias always resolves. Each write is one
// statement whose WHERE carries the condition (the target is unyanked; no alias holds the version), so a move
// and a yank racing each other cannot both win: D1 runs statements one at a time, and the loser changes no
// row. Reads before a write only shape messages; they never decide (0004_registry_guards.sql backs this up).
import { AppError } from "../../../src/errors.ts";
import { audit } from "../common/audit.ts";
import { nowIso } from "../common/d1.ts";
import { announce } from "../common/invalidation.ts";
import type { RegistryStore } from "./registry-store.ts";

export interface AliasMove {
  tenant: string;
  name: string;
  alias: string;
  version: number;
  /** The version the caller believes the alias is at: null for "must not exist", undefined for "any". */
  expected: number | null | undefined;
  actor: string;
}

/** Yank attempts before giving up: each lost round means another writer changed this version meanwhile. */
const YANK_ATTEMPTS = 3;

/**
 * The alias write of a move, conditional on its target being unyanked: it changes exactly one row when the
 * move happened and none when the compare-and-set failed or the target is yanked. Promotion runs it inside
 * its own batch too.
 */
export function moveStatement(
  db: D1Database,
  adapterId: string,
  move: AliasMove,
  now: string,
): D1PreparedStatement {
  const unyanked =
    "EXISTS (SELECT 1 FROM adapter_versions WHERE adapter_id = ?1 AND version = ?3 AND yanked_at IS NULL)";
  if (move.expected === undefined) {
    return db
      .prepare(
        `INSERT INTO aliases (adapter_id, alias, version, updated_at) SELECT ?1, ?2, ?3, ?4 WHERE ${unyanked}
         ON CONFLICT (adapter_id, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
      )
      .bind(adapterId, move.alias, move.version, now);
  }
  if (move.expected === null) {
    return db
      .prepare(
        `INSERT INTO aliases (adapter_id, alias, version, updated_at) SELECT ?1, ?2, ?3, ?4 WHERE ${unyanked}
         ON CONFLICT (adapter_id, alias) DO NOTHING`,
      )
      .bind(adapterId, move.alias, move.version, now);
  }
  return db
    .prepare(
      `UPDATE aliases SET version = ?3, updated_at = ?4
       WHERE adapter_id = ?1 AND alias = ?2 AND version = ?5 AND ${unyanked}`,
    )
    .bind(adapterId, move.alias, move.version, now, move.expected);
}

function yankedTarget(move: { name: string; version: number }): AppError {
  return new AppError("conflict", `${move.name}@${move.version} is yanked; an alias cannot point at it`, {
    param: "version",
  });
}

export class ReleaseStore {
  readonly #db: D1Database;
  readonly #registry: RegistryStore;

  constructor(db: D1Database, registry: RegistryStore) {
    this.#db = db;
    this.#registry = registry;
  }

  async moveAlias(move: AliasMove): Promise<{ alias: string; version: number; previous: number | null }> {
    const adapterId = await this.#registry.adapterId(move.tenant, move.name);
    const target = await this.#registry.version(move.tenant, move.name, move.version);
    if (target.yanked_at !== null) throw yankedTarget(move);
    const previous = await this.#current(adapterId, move.alias);
    const [moved] = await this.#db.batch([
      moveStatement(this.#db, adapterId, move, nowIso()),
      audit(this.#db, {
        tenant: move.tenant,
        actor: move.actor,
        action: "alias_move",
        target: `${move.name}@${move.alias}`,
        details: { version: move.version, expected: move.expected ?? null },
        onlyIfChanged: true,
      }),
    ]);
    if (moved?.meta.changes !== 1) {
      // A yank that won the race is the reason when the target is yanked now; otherwise the compare-and-set.
      const now = await this.#registry.version(move.tenant, move.name, move.version);
      if (now.yanked_at !== null) throw yankedTarget(move);
      const current = await this.#current(adapterId, move.alias);
      const at = current === null ? "does not exist" : `is at version ${current}`;
      const wanted =
        move.expected === null ? "expected it not to exist" : `expected version ${move.expected}`;
      throw new AppError("conflict", `alias ${move.name}@${move.alias} ${at}; ${wanted}`, {
        param: "expected",
      });
    }
    // Read-your-writes within this isolate: its cached `name@alias` must not outlive the move.
    announce({ kind: "adapter", tenant: move.tenant, name: move.name });
    return { alias: move.alias, version: move.version, previous };
  }

  async yank(input: { tenant: string; name: string; version: number; actor: string }): Promise<string> {
    const adapterId = await this.#registry.adapterId(input.tenant, input.name);
    for (let attempt = 1; ; attempt++) {
      const row = await this.#registry.version(input.tenant, input.name, input.version);
      // Yanking twice is one yank: the second answers with the first one's time.
      if (row.yanked_at !== null) return row.yanked_at;
      const now = nowIso();
      const [yanked] = await this.#db.batch([
        this.#db
          .prepare(
            `UPDATE adapter_versions SET yanked_at = ?3 WHERE adapter_id = ?1 AND version = ?2 AND yanked_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM aliases WHERE adapter_id = ?1 AND version = ?2)`,
          )
          .bind(adapterId, input.version, now),
        audit(this.#db, {
          tenant: input.tenant,
          actor: input.actor,
          action: "yank",
          target: `${input.name}@${input.version}`,
          details: {},
          onlyIfChanged: true,
        }),
      ]);
      if (yanked?.meta.changes === 1) {
        announce({ kind: "adapter", tenant: input.tenant, name: input.name });
        return now;
      }
      const aliases = await this.#aliasesAt(adapterId, input.version);
      if (aliases.length > 0) {
        throw new AppError(
          "conflict",
          `${input.name}@${input.version} cannot be yanked while aliases point at it: ${aliases.join(", ")}; move them first`,
          { param: "version" },
        );
      }
      // No alias holds it now and this yank changed nothing: a racing yank won (the next read returns its
      // time) or an alias moved away meanwhile (the next attempt yanks).
      if (attempt >= YANK_ATTEMPTS) {
        throw new AppError(
          "conflict",
          `${input.name}@${input.version} kept changing while being yanked; try again`,
          { param: "version" },
        );
      }
    }
  }

  async #current(adapterId: string, alias: string): Promise<number | null> {
    const row = await this.#db
      .prepare("SELECT version FROM aliases WHERE adapter_id = ? AND alias = ?")
      .bind(adapterId, alias)
      .first<{ version: number }>();
    return row?.version ?? null;
  }

  async #aliasesAt(adapterId: string, version: number): Promise<string[]> {
    const { results } = await this.#db
      .prepare("SELECT alias FROM aliases WHERE adapter_id = ? AND version = ? ORDER BY alias")
      .bind(adapterId, version)
      .all<{ alias: string }>();
    return results.map((r) => r.alias);
  }
}
