// The audit log: publishes, alias moves, yanks, key changes and fleet membership. Entries are written in the same D1 batch
// as the change they record, so a change and its entry commit or fail together.

export type AuditAction =
  | "publish"
  | "alias_move"
  | "yank"
  | "key_create"
  | "key_revoke"
  | "key_limits"
  | "tenant_create"
  | "tenant_limits"
  | "route_create"
  | "route_update"
  | "route_promote"
  | "route_guardrail"
  // fleet membership, under the fleet key's tenant (workers/edge/fleet/member-store.ts)
  | "runner_join"
  | "runner_drain"
  | "runner_leave"
  | "runner_lapse";

export interface AuditEntry {
  tenant: string | null;
  actor: string;
  action: AuditAction;
  target: string;
  details: Record<string, unknown>;
  /** Sets `details.version` to the adapter's highest version when the statement runs (inside a publish). */
  latestVersionOf?: string;
  /** Writes the entry only when the batch's previous statement changed a row (a compare-and-set won). */
  onlyIfChanged?: boolean;
}

export function audit(db: D1Database, entry: AuditEntry): D1PreparedStatement {
  const details =
    entry.latestVersionOf === undefined
      ? "?5"
      : "json_set(?5, '$.version', (SELECT MAX(version) FROM adapter_versions WHERE adapter_id = ?7))";
  return db
    .prepare(
      `INSERT INTO audit_log (tenant, actor, action, target, details, created_at)
       SELECT ?1, ?2, ?3, ?4, ${details}, ?6${entry.onlyIfChanged ? " WHERE changes() = 1" : ""}`,
    )
    .bind(
      entry.tenant,
      entry.actor,
      entry.action,
      entry.target,
      JSON.stringify(entry.details),
      new Date().toISOString(),
      ...(entry.latestVersionOf === undefined ? [] : [entry.latestVersionOf]),
    );
}

export interface AuditRecord {
  id: number;
  actor: string;
  action: string;
  target: string;
  details: Record<string, unknown>;
  createdAt: string;
}

/** A tenant's newest entries first; `before` pages back by id. */
export async function auditTrail(
  db: D1Database,
  tenant: string,
  limit: number,
  before?: number,
): Promise<AuditRecord[]> {
  const { results } = await db
    .prepare(
      `SELECT id, actor, action, target, details, created_at FROM audit_log
       WHERE tenant = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3`,
    )
    .bind(tenant, before ?? Number.MAX_SAFE_INTEGER, limit)
    .all<{
      id: number;
      actor: string;
      action: string;
      target: string;
      details: string;
      created_at: string;
    }>();
  return results.map((r) => ({
    id: r.id,
    actor: r.actor,
    action: r.action,
    target: r.target,
    details: JSON.parse(r.details) as Record<string, unknown>,
    createdAt: r.created_at,
  }));
}
