/** @jsxImportSource hono/jsx */
// The usage page: the session's tenant's tokens per adapter over a range, one chart per adapter, beside its
// limits and the month's tokens against its budget. It reads through the same store as GET /admin/usage,
// after the tenant's meter has written what it holds.
import { Hono } from "hono";
import { z } from "zod";
import { validate } from "../../../../src/http/validate.ts";
import { KeyStore } from "../../tenants/key-store.ts";
import { sendPending } from "../../usage/request-meter.ts";
import { UsageStore } from "../../usage/usage-store.ts";
import { monthStart } from "../../usage/usage-routes.ts";
import type { ConsoleEnv } from "../session.ts";
import { RANGES, type RangeName, UsagePage } from "../views/usage.tsx";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const UsageQuery = z.strictObject({
  range: z.enum(Object.keys(RANGES) as [RangeName, ...RangeName[]]).default("7d"),
});

/** The x positions of a range: hours for a day, days otherwise, ending with the current one. */
function buckets(range: RangeName, now: number): { from: number; labels: string[]; by: "hour" | "day" } {
  const { count, by } = RANGES[range];
  const step = by === "hour" ? HOUR_MS : DAY_MS;
  const last = Math.floor(now / step) * step;
  const from = last - (count - 1) * step;
  const width = by === "hour" ? 13 : 10;
  const labels = Array.from({ length: count }, (_, i) =>
    new Date(from + i * step).toISOString().slice(0, width),
  );
  return { from, labels, by };
}

export const usagePages = new Hono<ConsoleEnv>().get("/usage", validate("query", UsageQuery), async (c) => {
  const { tenant } = c.get("session");
  const { range } = c.req.valid("query");
  const now = Date.now();
  const { from, labels, by } = buckets(range, now);
  await sendPending(tenant);
  await c.env.TENANT_METER.getByName(tenant).flush();
  const store = new UsageStore(c.env.DB);
  const to = now + 1;
  const [points, lines, month, info] = await Promise.all([
    store.series({ tenant, from, to, by }),
    store.report({ tenant, from, to, groupBy: "adapter" }),
    store.report({ tenant, from: monthStart(now), to, groupBy: "day" }),
    new KeyStore(c.env.DB).tenant(tenant),
  ]);
  const monthTokens = month.reduce((n, l) => n + l.totalTokens, 0);
  return c.html(
    <UsagePage
      session={c.get("session")}
      range={range}
      labels={labels}
      points={points}
      lines={lines}
      tenant={info}
      monthTokens={monthTokens}
    />,
  );
});
