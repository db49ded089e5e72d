// Hourly usage in D1: written by the tenants' meters (usage/tenant-meter.ts), read by the usage API and the
// console. A meter writes each line's absolute totals, so writing a line again changes nothing; every read
// is scoped to one tenant unless the operator asks across tenants.
import { z } from "zod";
import type { UsageGroup, UsageLine } from "../../../src/contracts/usage.ts";
import { parseRows } from "../common/d1.ts";

/** One line of usage_hourly (migrations/0005_usage_limits.sql). */
export interface HourlyRow {
  hour: string;
  key_id: string;
  adapter: string;
  route: string;
  variant: string;
  shadow: number;
  status: number;
  requests: number;
  cancelled: number;
  cold_loads: number;
  prompt_tokens: number;
  completion_tokens: number;
  latency_ms: number;
}

const count = z.number().int().nonnegative();

const ReportRowSchema = z.object({
  tenant: z.string(),
  dim1: z.string().nullable(),
  dim2: z.string().nullable(),
  dim3: z.string().nullable(),
  shadow: z.number().int(),
  requests: count,
  errors: count,
  cancelled: count,
  cold_loads: count,
  prompt_tokens: count,
  completion_tokens: count,
  latency_ms: count,
});

const SeriesRowSchema = z.object({
  adapter: z.string(),
  bucket: z.string(),
  shadow: z.number().int(),
  prompt_tokens: count,
  completion_tokens: count,
  requests: count,
});

export interface SeriesPoint {
  adapter: string;
  /** The hour (`YYYY-MM-DDTHH`) or day (`YYYY-MM-DD`) the point sums. */
  bucket: string;
  shadow: boolean;
  requests: number;
  tokens: number;
}

/** The columns each grouping reads, as dim1..dim3 (the key's name and prefix come from api_keys). */
const DIMS: Record<UsageGroup, string> = {
  adapter: "u.adapter AS dim1, NULL AS dim2, NULL AS dim3",
  key: "u.key_id AS dim1, k.name AS dim2, k.prefix AS dim3",
  route: "u.route AS dim1, u.variant AS dim2, NULL AS dim3",
  day: "substr(u.hour, 1, 10) AS dim1, NULL AS dim2, NULL AS dim3",
};

const orNull = (s: string | null) => (s === "" ? null : s);

export class UsageStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /** Writes the lines' totals as they stand: one D1 batch, whatever the number of lines. */
  async write(tenant: string, rows: HourlyRow[]): Promise<void> {
    if (rows.length === 0) return;
    const upsert = this.#db.prepare(
      `INSERT INTO usage_hourly (tenant, hour, key_id, adapter, route, variant, shadow, status, requests,
                                 cancelled, cold_loads, prompt_tokens, completion_tokens, latency_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, hour, key_id, adapter, route, variant, shadow, status) DO UPDATE SET
         requests = excluded.requests, cancelled = excluded.cancelled, cold_loads = excluded.cold_loads,
         prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
         latency_ms = excluded.latency_ms`,
    );
    await this.#db.batch(
      rows.map((r) =>
        upsert.bind(
          tenant,
          r.hour,
          r.key_id,
          r.adapter,
          r.route,
          r.variant,
          r.shadow,
          r.status,
          r.requests,
          r.cancelled,
          r.cold_loads,
          r.prompt_tokens,
          r.completion_tokens,
          r.latency_ms,
        ),
      ),
    );
  }

  /** Usage between two instants (hours starting in [from, to)), one line per group and shadow flag. */
  async report(input: {
    tenant: string | null;
    from: number;
    to: number;
    groupBy: UsageGroup;
  }): Promise<UsageLine[]> {
    const { tenant, groupBy } = input;
    const join = groupBy === "key" ? "LEFT JOIN api_keys k ON k.id = u.key_id" : "";
    const where = `u.hour >= ? AND u.hour < ?${tenant === null ? "" : " AND u.tenant = ?"}`;
    const binds: unknown[] = [new Date(input.from).toISOString(), new Date(input.to).toISOString()];
    if (tenant !== null) binds.push(tenant);
    const { results } = await this.#db
      .prepare(
        `SELECT u.tenant AS tenant, ${DIMS[groupBy]}, u.shadow AS shadow,
                SUM(u.requests) AS requests,
                SUM(CASE WHEN u.status >= 400 THEN u.requests ELSE 0 END) AS errors,
                SUM(u.cancelled) AS cancelled, SUM(u.cold_loads) AS cold_loads,
                SUM(u.prompt_tokens) AS prompt_tokens, SUM(u.completion_tokens) AS completion_tokens,
                SUM(u.latency_ms) AS latency_ms
         FROM usage_hourly u ${join}
         WHERE ${where}
         GROUP BY u.tenant, dim1, dim2, dim3, u.shadow
         ORDER BY u.tenant, dim1, dim2, u.shadow`,
      )
      .bind(...binds)
      .all();
    return parseRows(ReportRowSchema, results, "usage_hourly").map((r): UsageLine => {
      const line: UsageLine = {
        tenant: r.tenant,
        shadow: r.shadow === 1,
        requests: r.requests,
        errors: r.errors,
        cancelled: r.cancelled,
        coldLoads: r.cold_loads,
        promptTokens: r.prompt_tokens,
        completionTokens: r.completion_tokens,
        totalTokens: r.prompt_tokens + r.completion_tokens,
        meanLatencyMs: r.requests === 0 ? null : r.latency_ms / r.requests,
      };
      switch (groupBy) {
        case "adapter":
          return { ...line, adapter: orNull(r.dim1) };
        case "key":
          return { ...line, key: { id: r.dim1 ?? "", name: r.dim2, prefix: r.dim3 } };
        case "route":
          return { ...line, route: orNull(r.dim1), variant: orNull(r.dim2) };
        case "day":
          return { ...line, day: r.dim1 ?? "" };
      }
      return line;
    });
  }

  /** Tokens and requests per adapter and hour or day, for the console's charts. */
  async series(input: {
    tenant: string;
    from: number;
    to: number;
    by: "hour" | "day";
  }): Promise<SeriesPoint[]> {
    const width = input.by === "hour" ? 13 : 10;
    const { results } = await this.#db
      .prepare(
        `SELECT adapter, substr(hour, 1, ?) AS bucket, shadow, SUM(requests) AS requests,
                SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens
         FROM usage_hourly WHERE tenant = ? AND hour >= ? AND hour < ?
         GROUP BY adapter, bucket, shadow ORDER BY adapter, bucket, shadow`,
      )
      .bind(width, input.tenant, new Date(input.from).toISOString(), new Date(input.to).toISOString())
      .all();
    return parseRows(SeriesRowSchema, results, "usage_hourly").map((r) => ({
      adapter: r.adapter,
      bucket: r.bucket,
      shadow: r.shadow === 1,
      requests: r.requests,
      tokens: r.prompt_tokens + r.completion_tokens,
    }));
  }
}
