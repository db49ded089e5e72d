// Routes (A/B experiments), their exposures and feedback, in D1. Every query is scoped by tenant; a route of
// another tenant is indistinguishable from one that does not exist.
import { z } from "zod";
import {
  type RouteConfig,
  RouteConfigSchema,
  type RouteStatus,
  RouteStatusSchema,
} from "../../../src/contracts/experiments.ts";
import { AppError } from "../../../src/errors.ts";
import { type AuditEntry, audit } from "../common/audit.ts";
import { isUniqueViolation, nowIso, parseRow, parseRows } from "../common/d1.ts";

const RouteRowSchema = z.object({
  id: z.string(),
  tenant: z.string(),
  name: z.string(),
  status: RouteStatusSchema,
  config: z
    .string()
    .transform((text) => JSON.parse(text) as unknown)
    .pipe(RouteConfigSchema),
  version: z.number().int(),
  winner: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type StoredRoute = z.infer<typeof RouteRowSchema>;

export interface RouteChange {
  status?: RouteStatus;
  config?: RouteConfig;
  winner?: string | null;
}

export interface Exposure {
  tenant: string;
  requestId: string;
  routeId: string;
  routeVersion: number;
  variant: string;
  shadow: boolean;
  adapter: string | null;
  subjectHash: string | null;
  status: number;
  error: boolean;
  latencyMs: number;
  promptTokens: number | null;
  completionTokens: number | null;
}

const n = z.number();
const VariantStatsRowSchema = z.object({
  variant: z.string(),
  n,
  errors: n,
  prompt_tokens: n,
  completion_tokens: n,
  fb_n: n,
  fb_sum: n,
  fb_sq: n,
  current_n: n,
});
export type VariantStatsRow = z.infer<typeof VariantStatsRowSchema>;
const LabelRowSchema = z.object({ variant: z.string(), label: z.string(), n });

function notFound(tenant: string, name: string): AppError {
  return new AppError("not_found", `route ${name} does not exist for tenant ${tenant}`, { param: "route" });
}

export class ExperimentStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  async find(tenant: string, name: string): Promise<StoredRoute | null> {
    const raw = await this.#db
      .prepare("SELECT * FROM routes WHERE tenant = ? AND name = ?")
      .bind(tenant, name)
      .first();
    return raw === null ? null : parseRow(RouteRowSchema, raw, "routes");
  }

  async get(tenant: string, name: string): Promise<StoredRoute> {
    const route = await this.find(tenant, name);
    if (route === null) throw notFound(tenant, name);
    return route;
  }

  async list(tenant: string): Promise<StoredRoute[]> {
    const { results } = await this.#db
      .prepare("SELECT * FROM routes WHERE tenant = ? ORDER BY name")
      .bind(tenant)
      .all();
    return parseRows(RouteRowSchema, results, "routes");
  }

  async create(tenant: string, name: string, config: RouteConfig, actor: string): Promise<StoredRoute> {
    const now = nowIso();
    const id = crypto.randomUUID();
    try {
      await this.#db.batch([
        this.#db
          .prepare(
            `INSERT INTO routes (id, tenant, name, status, config, version, winner, created_at, updated_at)
             VALUES (?, ?, ?, 'running', ?, 1, NULL, ?, ?)`,
          )
          .bind(id, tenant, name, JSON.stringify(config), now, now),
        audit(this.#db, { tenant, actor, action: "route_create", target: name, details: { config } }),
      ]);
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new AppError("conflict", `route ${name} already exists`, { param: "name" });
      }
      throw error;
    }
    return await this.get(tenant, name);
  }

  /** The compare-and-set UPDATE of a change: it changes one row only while the route is at `route.version`. */
  updateStatement(route: StoredRoute, change: RouteChange): D1PreparedStatement {
    return this.#db
      .prepare(
        `UPDATE routes SET status = ?1, config = ?2, winner = ?3, version = version + 1, updated_at = ?4
         WHERE id = ?5 AND version = ?6`,
      )
      .bind(
        change.status ?? route.status,
        JSON.stringify(change.config ?? route.config),
        change.winner === undefined ? route.winner : change.winner,
        nowIso(),
        route.id,
        route.version,
      );
  }

  /** Applies a change if nobody changed the route since it was read; the audit entry commits with it. */
  async update(
    route: StoredRoute,
    change: RouteChange,
    entry: Omit<AuditEntry, "onlyIfChanged">,
  ): Promise<StoredRoute> {
    const [updated] = await this.#db.batch([
      this.updateStatement(route, change),
      audit(this.#db, { ...entry, onlyIfChanged: true }),
    ]);
    if (updated?.meta.changes !== 1) throw await this.conflict(route);
    return await this.get(route.tenant, route.name);
  }

  async conflict(route: StoredRoute): Promise<AppError> {
    const now = await this.find(route.tenant, route.name);
    const state = now === null ? "no longer exists" : `is at version ${now.version}`;
    return new AppError("conflict", `route ${route.name} ${state}; expected version ${route.version}`, {
      param: "expectedVersion",
    });
  }

  async recordExposures(rows: readonly Exposure[]): Promise<void> {
    if (rows.length === 0) return;
    const now = nowIso();
    await this.#db.batch(
      rows.map((e) =>
        this.#db
          .prepare(
            `INSERT INTO exposures (tenant, request_id, route_id, route_version, variant, shadow, adapter,
               subject_hash, status, error, latency_ms, prompt_tokens, completion_tokens, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
          )
          .bind(
            e.tenant,
            e.requestId,
            e.routeId,
            e.routeVersion,
            e.variant,
            e.shadow ? 1 : 0,
            e.adapter,
            e.subjectHash,
            e.status,
            e.error ? 1 : 0,
            e.latencyMs,
            e.promptTokens,
            e.completionTokens,
            now,
          ),
      ),
    );
  }

  /** Records feedback for a request this tenant made on some route; false when there is no such request. */
  async recordFeedback(tenant: string, requestId: string, score: number | null, label: string | null) {
    const [upsert] = await this.#db.batch([
      this.#db
        .prepare(
          `INSERT INTO feedback (tenant, request_id, score, label, created_at)
           SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS
             (SELECT 1 FROM exposures WHERE tenant = ?1 AND request_id = ?2 AND shadow = 0)
           ON CONFLICT (tenant, request_id) DO UPDATE SET score = excluded.score, label = excluded.label,
             created_at = excluded.created_at`,
        )
        .bind(tenant, requestId, score, label, nowIso()),
    ]);
    return upsert?.meta.changes === 1;
  }

  /** Per-variant counts, errors, tokens, feedback moments, and exposures under `version` (for SRM). */
  async variantStats(routeId: string, version: number): Promise<VariantStatsRow[]> {
    const { results } = await this.#db
      .prepare(
        `SELECT e.variant, COUNT(*) AS n, SUM(e.error) AS errors,
           COALESCE(SUM(e.prompt_tokens), 0) AS prompt_tokens,
           COALESCE(SUM(e.completion_tokens), 0) AS completion_tokens,
           COUNT(f.score) AS fb_n, COALESCE(SUM(f.score), 0) AS fb_sum, COALESCE(SUM(f.score * f.score), 0) AS fb_sq,
           SUM(CASE WHEN e.route_version = ?2 THEN 1 ELSE 0 END) AS current_n
         FROM exposures e
         LEFT JOIN feedback f ON e.shadow = 0 AND f.tenant = e.tenant AND f.request_id = e.request_id
         WHERE e.route_id = ?1 GROUP BY e.variant`,
      )
      .bind(routeId, version)
      .all();
    return parseRows(VariantStatsRowSchema, results, "exposures");
  }

  async labels(routeId: string): Promise<z.infer<typeof LabelRowSchema>[]> {
    const { results } = await this.#db
      .prepare(
        `SELECT e.variant, f.label, COUNT(*) AS n FROM exposures e
         JOIN feedback f ON f.tenant = e.tenant AND f.request_id = e.request_id
         WHERE e.route_id = ? AND e.shadow = 0 AND f.label IS NOT NULL GROUP BY e.variant, f.label`,
      )
      .bind(routeId)
      .all();
    return parseRows(LabelRowSchema, results, "feedback");
  }

  /** Latencies at the given 0-based ranks of each variant's sorted latencies, in one batch. */
  async latencyAt(routeId: string, ranks: { variant: string; rank: number }[]): Promise<(number | null)[]> {
    if (ranks.length === 0) return [];
    const results = await this.#db.batch<{ latency_ms: number }>(
      ranks.map(({ variant, rank }) =>
        this.#db
          .prepare(
            "SELECT latency_ms FROM exposures WHERE route_id = ? AND variant = ? ORDER BY latency_ms LIMIT 1 OFFSET ?",
          )
          .bind(routeId, variant, rank),
      ),
    );
    return results.map((r) => r.results[0]?.latency_ms ?? null);
  }
}
