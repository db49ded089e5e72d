// The tenant's meter: one Durable Object per tenant. It holds the tenant's and its keys' buckets and grants
// isolates slices of them (limits/allowance-lease.ts), so requests are admitted in the isolate without a call
// here, and it takes the records of what answers used, in batches. It keeps the hour's usage lines in its own SQLite storage and writes them
// to D1 on an alarm, at most one D1 batch per USAGE_FLUSH_MS, never on a request's path. Why a Durable
// Object, and what it costs: docs/decisions/0007-usage-metering.md. It never reads the caches of an isolate.
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { parseRows } from "../common/d1.ts";
import type { LeaseGrant, LeaseRequest } from "../limits/allowance-lease.ts";
import { Limiter, type LimitsInput } from "../limits/limiter.ts";
import { hourOf, type MeteredRequest, monthOf } from "./metered-request.ts";
import { type HourlyRow, UsageStore } from "./usage-store.ts";

/** Longest a recorded request waits before its line reaches D1 (README, "Usage and limits"). */
export const USAGE_FLUSH_MS = 10_000;
/** Lines already in D1 are kept this long, so a late request of a past hour adds to its total. */
const KEEP_MS = 48 * 3_600_000;

export interface RecordInput {
  tenant: string;
  requests: { request: MeteredRequest; limits: LimitsInput }[];
}

const LINE_KEY = ["hour", "key_id", "adapter", "route", "variant", "shadow", "status"] as const;

const int = z.number().int();
const BucketSchema = z.object({ id: z.string(), level: z.number(), at: z.number(), limit: int });
const PendingSchema = z.object({
  hour: z.string(),
  key_id: z.string(),
  adapter: z.string(),
  route: z.string(),
  variant: z.string(),
  shadow: int,
  status: int,
  requests: int,
  cancelled: int,
  cold_loads: int,
  prompt_tokens: int,
  completion_tokens: int,
  latency_ms: int,
  rev: int,
});

export class TenantMeter extends DurableObject<Env> {
  readonly #limiter = new Limiter();
  readonly #sql: SqlStorage;
  readonly #now: () => number = () => Date.now();
  #tenant: string | null = null;
  #monthTokens: { month: string; tokens: number } | null = null;
  /** An alarm is known to be set; cleared when it fires. */
  #alarmSet = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS lines (
      hour TEXT NOT NULL, key_id TEXT NOT NULL, adapter TEXT NOT NULL, route TEXT NOT NULL,
      variant TEXT NOT NULL, shadow INTEGER NOT NULL, status INTEGER NOT NULL,
      requests INTEGER NOT NULL, cancelled INTEGER NOT NULL, cold_loads INTEGER NOT NULL,
      prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_ms INTEGER NOT NULL,
      rev INTEGER NOT NULL, flushed_rev INTEGER NOT NULL,
      PRIMARY KEY (${LINE_KEY.join(", ")}))`);
    this.#sql.exec("CREATE TABLE IF NOT EXISTS months (month TEXT PRIMARY KEY, tokens INTEGER NOT NULL)");
    this.#sql.exec("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
    // The buckets outlive an eviction: a meter that starts again must not give a drained key a full minute.
    this.#sql.exec(
      "CREATE TABLE IF NOT EXISTS buckets (id TEXT PRIMARY KEY, level REAL NOT NULL, at INTEGER NOT NULL, lim INTEGER NOT NULL)",
    );
    this.#limiter.restore(
      parseRows(
        BucketSchema,
        this.#sql.exec('SELECT id, level, at, lim AS "limit" FROM buckets').toArray(),
        "meter buckets",
      ),
    );
  }

  #saveBuckets(): void {
    const { write, forget } = this.#limiter.changes();
    for (const b of write)
      this.#sql.exec(
        "INSERT OR REPLACE INTO buckets (id, level, at, lim) VALUES (?, ?, ?, ?)",
        b.id,
        b.level,
        b.at,
        b.limit,
      );
    for (const id of forget) this.#sql.exec("DELETE FROM buckets WHERE id = ?", id);
  }

  #setTenant(tenant: string): void {
    if (this.#tenant === tenant) return;
    this.#tenant = tenant;
    this.#sql.exec("INSERT OR REPLACE INTO meta (name, value) VALUES ('tenant', ?)", tenant);
  }

  #tenantName(): string | null {
    if (this.#tenant !== null) return this.#tenant;
    const row = this.#sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE name = 'tenant'")
      .toArray()[0];
    this.#tenant = row?.value ?? null;
    return this.#tenant;
  }

  #usedThisMonth(now: number): { month: string; tokens: number } {
    const month = monthOf(now);
    if (this.#monthTokens?.month !== month) {
      const row = this.#sql
        .exec<{ tokens: number }>("SELECT tokens FROM months WHERE month = ?", month)
        .toArray()[0];
      this.#monthTokens = { month, tokens: row?.tokens ?? 0 };
    }
    return this.#monthTokens;
  }

  /**
   * Grants an isolate slices of the buckets it asks for, after taking back what it gives, and tells it the
   * month's tokens for the budget (limits/allowance-lease.ts). The buckets are saved with the grant.
   */
  async lease(input: LeaseRequest): Promise<LeaseGrant> {
    this.#setTenant(input.tenant);
    const now = this.#now();
    const used = this.#usedThisMonth(now);
    const slots = input.slots.map((s) => ({
      id: s.id,
      ...this.#limiter.grant(
        { id: s.id, scope: s.scope, kind: s.kind, limit: s.limit },
        Math.max(0, s.want),
        Math.max(0, s.give),
        now,
      ),
    }));
    this.#saveBuckets();
    return { month: used.month, monthTokens: used.tokens, slots };
  }

  /**
   * Records what answers used (a batch from one isolate, usage/request-meter.ts): tokens count against the
   * month and, unless a shadow's, against the minute's limits. One storage transaction per batch.
   */
  async record(input: RecordInput): Promise<void> {
    this.#setTenant(input.tenant);
    const now = this.#now();
    this.ctx.storage.transactionSync(() => {
      for (const { request, limits } of input.requests) {
        const tokens = request.promptTokens + request.completionTokens;
        if (!request.shadow) this.#limiter.charge(limits, tokens, now);
        if (tokens > 0) {
          const month = monthOf(request.at);
          this.#sql.exec(
            "INSERT INTO months (month, tokens) VALUES (?, ?) ON CONFLICT (month) DO UPDATE SET tokens = tokens + excluded.tokens",
            month,
            tokens,
          );
          if (this.#monthTokens?.month === month) this.#monthTokens.tokens += tokens;
        }
        this.#line(request);
      }
      this.#limiter.sweep(now);
      this.#saveBuckets();
    });
    await this.#ensureAlarm();
  }

  #line(r: MeteredRequest): void {
    this.#sql.exec(
      `INSERT INTO lines (${LINE_KEY.join(", ")}, requests, cancelled, cold_loads, prompt_tokens,
                          completion_tokens, latency_ms, rev, flushed_rev)
       VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, 1, 0)
       ON CONFLICT (${LINE_KEY.join(", ")}) DO UPDATE SET
         requests = requests + 1, cancelled = cancelled + excluded.cancelled,
         cold_loads = cold_loads + excluded.cold_loads, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
         completion_tokens = completion_tokens + excluded.completion_tokens,
         latency_ms = latency_ms + excluded.latency_ms, rev = rev + 1`,
      hourOf(r.at),
      r.keyId,
      r.adapter,
      r.route,
      r.variant,
      r.shadow ? 1 : 0,
      r.status,
      r.cancelled ? 1 : 0,
      r.cold ? 1 : 0,
      r.promptTokens,
      r.completionTokens,
      Math.round(r.latencyMs),
    );
  }

  async #ensureAlarm(): Promise<void> {
    // One alarm at a time: lines recorded before it fires go out in its one batch.
    if (this.#alarmSet) return;
    if ((await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(this.#now() + USAGE_FLUSH_MS);
    }
    this.#alarmSet = true;
  }

  /** Writes every line changed since its last write to D1 (the usage API calls this to read its own writes). */
  async flush(): Promise<void> {
    const tenant = this.#tenantName();
    if (tenant === null) return;
    const pending: (HourlyRow & { rev: number })[] = parseRows(
      PendingSchema,
      this.#sql
        .exec(
          `SELECT ${LINE_KEY.join(", ")}, requests, cancelled, cold_loads, prompt_tokens, completion_tokens,
                  latency_ms, rev FROM lines WHERE rev > flushed_rev`,
        )
        .toArray(),
      "meter lines",
    );
    if (pending.length > 0) {
      await new UsageStore(this.env.DB).write(tenant, pending);
      // Lines changed while the batch was in flight keep their newer rev and go out with the next flush.
      for (const p of pending) {
        this.#sql.exec(
          `UPDATE lines SET flushed_rev = ? WHERE ${LINE_KEY.map((k) => `${k} = ?`).join(" AND ")}`,
          p.rev,
          ...LINE_KEY.map((k) => p[k]),
        );
      }
    }
    const now = this.#now();
    this.#sql.exec("DELETE FROM lines WHERE rev = flushed_rev AND hour < ?", hourOf(now - KEEP_MS));
    this.#sql.exec("DELETE FROM months WHERE month < ?", monthOf(now - 62 * 24 * 3_600_000));
  }

  override async alarm(): Promise<void> {
    this.#alarmSet = false;
    await this.flush();
    const left = this.#sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM lines WHERE rev > flushed_rev")
      .one();
    if (left.n > 0) {
      await this.ctx.storage.setAlarm(this.#now() + USAGE_FLUSH_MS);
      this.#alarmSet = true;
    }
  }
}
