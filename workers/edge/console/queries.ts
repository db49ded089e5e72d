// Read-only queries the console needs beyond the stores' own: alias history, key names, versions by runner
// id, and an experiment's exposures over time. Each filters on the session's tenant.
import { z } from "zod";
import { parseRows } from "../common/d1.ts";

const AliasEventSchema = z.object({
  actor: z.string(),
  target: z.string(),
  details: z
    .string()
    .transform((t) => JSON.parse(t) as unknown)
    .pipe(z.record(z.string(), z.unknown())),
  created_at: z.string(),
});
export type AliasEvent = z.infer<typeof AliasEventSchema>;

/** Alias moves of one adapter, newest first (the audit log is their history). */
export async function aliasHistory(db: D1Database, tenant: string, name: string): Promise<AliasEvent[]> {
  const prefix = `${name}@`;
  const { results } = await db
    .prepare(
      `SELECT actor, target, details, created_at FROM audit_log
       WHERE tenant = ?1 AND action = 'alias_move' AND substr(target, 1, length(?2)) = ?2
       ORDER BY id DESC LIMIT 50`,
    )
    .bind(tenant, prefix)
    .all();
  return parseRows(AliasEventSchema, results, "audit_log");
}

/** `key:<id>` actors → the key's name, so pages say who did something in words. */
export async function actorNames(db: D1Database, tenant: string): Promise<Map<string, string>> {
  const { results } = await db
    .prepare("SELECT id, name FROM api_keys WHERE tenant = ?")
    .bind(tenant)
    .all<{ id: string; name: string }>();
  return new Map(results.map((r) => [`key:${r.id}`, r.name]));
}

export interface TenantVersion {
  name: string;
  version: number;
  adapterId: string;
  yanked: boolean;
}

export async function tenantVersions(db: D1Database, tenant: string): Promise<TenantVersion[]> {
  const { results } = await db
    .prepare(
      `SELECT a.name, v.version, v.runner_adapter_id, v.yanked_at FROM adapter_versions v
       JOIN adapters a ON a.id = v.adapter_id WHERE a.tenant = ? ORDER BY a.name, v.version`,
    )
    .bind(tenant)
    .all<{ name: string; version: number; runner_adapter_id: string; yanked_at: string | null }>();
  return results.map((r) => ({
    name: r.name,
    version: r.version,
    adapterId: r.runner_adapter_id,
    yanked: r.yanked_at !== null,
  }));
}

const BucketRowSchema = z.object({
  variant: z.string(),
  shadow: z.number(),
  bucket: z.number(),
  n: z.number(),
  errors: z.number(),
  latency: z.number(),
});
export type BucketRow = z.infer<typeof BucketRowSchema>;

export interface TimeSeries {
  /** Start of bucket 0 and the bucket width. */
  start: number;
  bucketMs: number;
  buckets: number;
  rows: BucketRow[];
}

/** At most this many points per line: enough to see a trend, few enough to read. */
const MAX_BUCKETS = 24;

/** A route's exposures grouped into equal time buckets spanning its first to last exposure. */
export async function exposureSeries(
  db: D1Database,
  tenant: string,
  routeId: string,
): Promise<TimeSeries | null> {
  const span = await db
    .prepare(
      "SELECT MIN(created_at) AS first, MAX(created_at) AS last FROM exposures WHERE tenant = ? AND route_id = ?",
    )
    .bind(tenant, routeId)
    .first<{ first: string | null; last: string | null }>();
  if (!span?.first || !span.last) return null;
  const start = Date.parse(span.first);
  const width = Math.max(Date.parse(span.last) - start, 1);
  const bucketMs = Math.max(1000, Math.ceil(width / MAX_BUCKETS));
  const { results } = await db
    .prepare(
      `SELECT variant, shadow,
         CAST(((julianday(created_at) - julianday(?3)) * 86400000.0) / ?4 AS INTEGER) AS bucket,
         COUNT(*) AS n, SUM(error) AS errors, AVG(latency_ms) AS latency
       FROM exposures WHERE tenant = ?1 AND route_id = ?2 GROUP BY variant, shadow, bucket ORDER BY bucket`,
    )
    .bind(tenant, routeId, span.first, bucketMs)
    .all();
  const rows = parseRows(BucketRowSchema, results, "exposures");
  const buckets = Math.max(1, ...rows.map((r) => r.bucket + 1));
  return { start, bucketMs, buckets, rows };
}
