// Adapters, their immutable versions and aliases, in D1. Every query is scoped by tenant; an adapter of
// another tenant is indistinguishable from one that does not exist.
import { z } from "zod";
import { type AdapterManifest, AdapterManifestSchema } from "../../../src/contracts/manifest.ts";
import type { ModelRef } from "../../../src/contracts/names.ts";
import { AppError } from "../../../src/errors.ts";
import { audit } from "../common/audit.ts";
import { isUniqueViolation, nowIso, parseRow, parseRows } from "../common/d1.ts";
import { announce } from "../common/invalidation.ts";

const jsonColumn = z.string().transform((text) => JSON.parse(text) as unknown);

const VersionRowSchema = z.object({
  adapter_id: z.string(),
  name: z.string(),
  base_model_id: z.string(),
  version: z.number().int(),
  runner_adapter_id: z.string(),
  weights_sha256: z.string(),
  weights_size: z.number().int(),
  config: jsonColumn.pipe(z.record(z.string(), z.unknown())),
  manifest: jsonColumn.pipe(AdapterManifestSchema),
  created_at: z.string(),
  yanked_at: z.string().nullable(),
  unservable_reason: z.string().nullable(),
  unservable_at: z.string().nullable(),
});
export type VersionRow = z.infer<typeof VersionRowSchema>;

const AdapterRowSchema = z.object({
  id: z.string(),
  name: z.string(),
  base_model_id: z.string(),
  description: z.string().nullable(),
  created_at: z.string(),
  latest: z.number().int().nullable(),
});
const AliasRowSchema = z.object({ name: z.string(), alias: z.string(), version: z.number().int() });

export interface AdapterSummary {
  name: string;
  baseModel: string;
  description: string | null;
  createdAt: string;
  /** Highest version that is not yanked. */
  latest: number | null;
  aliases: Record<string, number>;
}

export interface NewVersion {
  tenant: string;
  name: string;
  baseModelId: string;
  description: string | null;
  runnerAdapterId: string;
  weightsSha256: string;
  weightsSize: number;
  config: Record<string, unknown>;
  /** The manifest without its version, which only the insert knows. */
  manifest: Omit<AdapterManifest, "version">;
  alias: string | null;
  actor: string;
}

const VERSION_SELECT = `SELECT a.name, a.base_model_id, v.* FROM adapter_versions v JOIN adapters a ON a.id = v.adapter_id`;
const PUBLISH_ATTEMPTS = 5;

function notFound(tenant: string, what: string): AppError {
  return new AppError("model_not_found", `${what} does not exist for tenant ${tenant}`, { param: "model" });
}

export class RegistryStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /** Inserts the next version atomically; the adapter is created on its first publish. */
  async publish(input: NewVersion): Promise<VersionRow> {
    const adapterId = await this.#ensureAdapter(input);
    for (let attempt = 1; ; attempt++) {
      try {
        const row = await this.#insertVersion(adapterId, input);
        // `name` and maybe `name@alias` now mean the new version, in this isolate from this moment.
        announce({ kind: "adapter", tenant: input.tenant, name: input.name });
        return row;
      } catch (error) {
        // D1 serialises writers, so MAX(version)+1 in one statement should never collide; if it ever does
        // (another engine, a replica), the retry takes the next number.
        if (isUniqueViolation(error) && attempt < PUBLISH_ATTEMPTS) continue;
        await this.#dropIfEmpty(adapterId);
        throw error;
      }
    }
  }

  /** A failed first publish must not leave an adapter with no versions behind. */
  async #dropIfEmpty(adapterId: string): Promise<void> {
    await this.#db
      .prepare(
        "DELETE FROM adapters WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM adapter_versions WHERE adapter_id = ?1)",
      )
      .bind(adapterId)
      .run();
  }

  async #ensureAdapter(input: NewVersion): Promise<string> {
    await this.#db
      .prepare(
        `INSERT INTO adapters (id, tenant, name, base_model_id, description, created_at)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, name) DO NOTHING`,
      )
      .bind(crypto.randomUUID(), input.tenant, input.name, input.baseModelId, input.description, nowIso())
      .run();
    const row = await this.#db
      .prepare("SELECT id, base_model_id FROM adapters WHERE tenant = ? AND name = ?")
      .bind(input.tenant, input.name)
      .first<{ id: string; base_model_id: string }>();
    if (row === null) throw new AppError("internal_error", `adapter ${input.name} vanished after insert`);
    if (row.base_model_id !== input.baseModelId) {
      throw new AppError(
        "conflict",
        `adapter ${JSON.stringify(input.name)} is for base model ${JSON.stringify(row.base_model_id)}; ` +
          `got base ${JSON.stringify(input.baseModelId)}. Publish it under a new name.`,
        { param: "base" },
      );
    }
    return row.id;
  }

  async #insertVersion(adapterId: string, input: NewVersion): Promise<VersionRow> {
    const createdAt = input.manifest.createdAt;
    const next = "COALESCE((SELECT MAX(version) FROM adapter_versions WHERE adapter_id = ?1), 0) + 1";
    const statements = [
      this.#db
        .prepare(
          `INSERT INTO adapter_versions
             (adapter_id, version, runner_adapter_id, weights_sha256, weights_size, config, manifest, created_at)
           VALUES (?1, ${next}, ?2, ?3, ?4, ?5, json_set(?6, '$.version', ${next}), ?7)
           RETURNING version`,
        )
        .bind(
          adapterId,
          input.runnerAdapterId,
          input.weightsSha256,
          input.weightsSize,
          JSON.stringify(input.config),
          JSON.stringify(input.manifest),
          createdAt,
        ),
      audit(this.#db, {
        tenant: input.tenant,
        actor: input.actor,
        action: "publish",
        target: input.name,
        details: { weightsSha256: input.weightsSha256 },
        latestVersionOf: adapterId,
      }),
    ];
    if (input.alias !== null) {
      statements.push(
        this.#db
          .prepare(
            `INSERT INTO aliases (adapter_id, alias, version, updated_at)
             VALUES (?1, ?2, (SELECT MAX(version) FROM adapter_versions WHERE adapter_id = ?1), ?3)
             ON CONFLICT (adapter_id, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
          )
          .bind(adapterId, input.alias, createdAt),
        audit(this.#db, {
          tenant: input.tenant,
          actor: input.actor,
          action: "alias_move",
          target: `${input.name}@${input.alias}`,
          details: { reason: "publish" },
          latestVersionOf: adapterId,
        }),
      );
    }
    const [inserted] = await this.#db.batch<{ version: number }>(statements);
    const version = inserted?.results[0]?.version;
    if (version === undefined)
      throw new AppError("internal_error", `publish of ${input.name} returned no version`);
    return await this.version(input.tenant, input.name, version);
  }

  /** Resolves a model reference to one immutable, unyanked version of this tenant. */
  async resolve(tenant: string, ref: ModelRef): Promise<VersionRow> {
    const scope = `${VERSION_SELECT} WHERE a.tenant = ? AND a.name = ?`;
    let raw: unknown;
    let what: string;
    if (ref.kind === "version") {
      what = `adapter ${ref.name}@${ref.version}`;
      raw = await this.#db.prepare(`${scope} AND v.version = ?`).bind(tenant, ref.name, ref.version).first();
    } else if (ref.kind === "alias") {
      what = `adapter ${ref.name}@${ref.alias}`;
      raw = await this.#db
        .prepare(
          `${scope} AND v.version = (SELECT version FROM aliases WHERE adapter_id = a.id AND alias = ?)`,
        )
        .bind(tenant, ref.name, ref.alias)
        .first();
    } else {
      what = `adapter ${ref.name}`;
      raw = await this.#db
        .prepare(`${scope} AND v.yanked_at IS NULL ORDER BY v.version DESC LIMIT 1`)
        .bind(tenant, ref.name)
        .first();
    }
    if (raw === null) throw notFound(tenant, what);
    const row = parseRow(VersionRowSchema, raw, "adapter_versions");
    if (row.yanked_at !== null) {
      throw new AppError("model_not_found", `${what} was yanked at ${row.yanked_at}`, { param: "model" });
    }
    return row;
  }

  /**
   * An unyanked version, of any tenant, with this runner content id: the fleet warms a joining runner with
   * content other runners served, and content ids carry no tenant. Its weights only ever go to a runner.
   */
  async withContent(adapterId: string): Promise<VersionRow | null> {
    const raw = await this.#db
      .prepare(`${VERSION_SELECT} WHERE v.runner_adapter_id = ? AND v.yanked_at IS NULL LIMIT 1`)
      .bind(adapterId)
      .first();
    return raw === null ? null : parseRow(VersionRowSchema, raw, "adapter_versions");
  }

  /**
   * Records that a runner refused this version's weights, with its reason (first refusal wins); the version's
   * requests then answer 422 without streaming the weights again (migrations/0007_version_refusals.sql).
   */
  async markUnservable(tenant: string, row: VersionRow, reason: string): Promise<void> {
    await this.#db
      .prepare(
        `UPDATE adapter_versions SET unservable_reason = ?1, unservable_at = ?2
         WHERE adapter_id = ?3 AND version = ?4 AND unservable_reason IS NULL
           AND adapter_id IN (SELECT id FROM adapters WHERE tenant = ?5)`,
      )
      .bind(reason, nowIso(), row.adapter_id, row.version, tenant)
      .run();
    announce({ kind: "adapter", tenant, name: row.name });
  }

  async versions(tenant: string, name: string): Promise<VersionRow[]> {
    const { results } = await this.#db
      .prepare(`${VERSION_SELECT} WHERE a.tenant = ? AND a.name = ? ORDER BY v.version`)
      .bind(tenant, name)
      .all();
    return parseRows(VersionRowSchema, results, "adapter_versions");
  }

  async version(tenant: string, name: string, version: number): Promise<VersionRow> {
    const raw = await this.#db
      .prepare(`${VERSION_SELECT} WHERE a.tenant = ? AND a.name = ? AND v.version = ?`)
      .bind(tenant, name, version)
      .first();
    if (raw === null) throw notFound(tenant, `adapter ${name}@${version}`);
    return parseRow(VersionRowSchema, raw, "adapter_versions");
  }

  async adapters(tenant: string, name?: string): Promise<AdapterSummary[]> {
    const filter = name === undefined ? "" : " AND a.name = ?2";
    const params = name === undefined ? [tenant] : [tenant, name];
    const [adapters, aliases] = await this.#db.batch([
      this.#db
        .prepare(
          `SELECT a.*, (SELECT MAX(version) FROM adapter_versions v WHERE v.adapter_id = a.id AND v.yanked_at IS NULL)
             AS latest FROM adapters a WHERE a.tenant = ?1${filter} ORDER BY a.name`,
        )
        .bind(...params),
      this.#db
        .prepare(
          `SELECT a.name, l.alias, l.version FROM aliases l JOIN adapters a ON a.id = l.adapter_id
           WHERE a.tenant = ?1${filter} ORDER BY l.alias`,
        )
        .bind(...params),
    ]);
    const aliasRows = parseRows(AliasRowSchema, aliases?.results ?? [], "aliases");
    return parseRows(AdapterRowSchema, adapters?.results ?? [], "adapters").map((row) => ({
      name: row.name,
      baseModel: row.base_model_id,
      description: row.description,
      createdAt: row.created_at,
      latest: row.latest,
      aliases: Object.fromEntries(
        aliasRows.filter((l) => l.name === row.name).map((l) => [l.alias, l.version]),
      ),
    }));
  }

  async blobInUse(sha256: string): Promise<boolean> {
    const row = await this.#db
      .prepare("SELECT 1 AS used FROM adapter_versions WHERE weights_sha256 = ? LIMIT 1")
      .bind(sha256)
      .first();
    return row !== null;
  }

  async adapterId(tenant: string, name: string): Promise<string> {
    const row = await this.#db
      .prepare("SELECT id FROM adapters WHERE tenant = ? AND name = ?")
      .bind(tenant, name)
      .first<{ id: string }>();
    if (row === null) throw notFound(tenant, `adapter ${name}`);
    return row.id;
  }
}
