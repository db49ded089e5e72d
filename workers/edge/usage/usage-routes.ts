// GET /admin/usage: a tenant's admins read their own tenant's usage; the operator reads one tenant's or
// every tenant's. A read of one tenant first has its meter write what it holds, so a tenant sees its own
// requests at once; a read across tenants sees each within USAGE_FLUSH_MS (usage/tenant-meter.ts).
import { Hono } from "hono";
import { USAGE_MAX_DAYS, type UsageReport, UsageQuerySchema } from "../../../src/contracts/usage.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import type { EdgeEnv } from "../env.ts";
import { tenantWith } from "../http/auth.ts";
import { sendPending } from "./request-meter.ts";
import { UsageStore } from "./usage-store.ts";

const DAY_MS = 86_400_000;

/** The first instant of the month (UTC) that `now` falls in. */
export function monthStart(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Reads a range and checks it: `from` before `to`, no longer than USAGE_MAX_DAYS. */
export function usageRange(
  from: number | undefined,
  to: number | undefined,
  now: number,
): { from: number; to: number } {
  const end = to ?? now;
  const start = from ?? monthStart(end - 1);
  if (start >= end) {
    throw new AppError(
      "invalid_request",
      `query.from: must be before query.to; got from ${new Date(start).toISOString()}, to ${new Date(end).toISOString()}`,
      { param: "from" },
    );
  }
  if (end - start > USAGE_MAX_DAYS * DAY_MS) {
    throw new AppError(
      "invalid_request",
      `query.to: must be at most ${USAGE_MAX_DAYS} days after query.from; got ${((end - start) / DAY_MS).toFixed(1)} days`,
      { param: "to" },
    );
  }
  return { from: start, to: end };
}

export const usageRoutes = new Hono<EdgeEnv>().get(
  "/usage",
  validate("query", UsageQuerySchema),
  async (c) => {
    const query = c.req.valid("query");
    const principal = c.get("principal");
    let tenant: string | null;
    if (principal.kind === "operator") {
      tenant = query.tenant ?? null;
    } else {
      tenant = tenantWith(c, "admin").tenant;
      if (query.tenant !== undefined && query.tenant !== tenant) {
        throw new AppError(
          "forbidden",
          `query.tenant: this key reads tenant ${tenant}'s usage only; got ${JSON.stringify(query.tenant)}`,
          { param: "tenant" },
        );
      }
    }
    const { from, to } = usageRange(query.from, query.to, Date.now());
    if (tenant !== null) {
      await sendPending(tenant);
      await c.env.TENANT_METER.getByName(tenant).flush();
    }
    const data = await new UsageStore(c.env.DB).report({ tenant, from, to, groupBy: query.group_by });
    const report: UsageReport = {
      object: "usage",
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      group_by: query.group_by,
      data,
    };
    return c.json(report);
  },
);
