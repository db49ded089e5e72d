/** @jsxImportSource hono/jsx */
// The runners page: every runner of the pool probed in parallel, static ones first, then the fleet's members
// (draining ones included, with their leases), its residents matched to this tenant's versions by content id.
import { Hono } from "hono";
import { currentMembers } from "../../fleet/fleet.ts";
import type { Runner } from "../../pool/runner-client.ts";
import { tenantVersions } from "../queries.ts";
import { probeRunner, type RunnerFetch } from "../runner-probe.ts";
import type { ConsoleEnv } from "../session.ts";
import { type MemberView, RunnersPage } from "../views/runners.tsx";

export type { RunnerFetch };

export function runnerPages(f: RunnerFetch) {
  return new Hono<ConsoleEnv>().get("/runners", async (c) => {
    const session = c.get("session");
    const pool = c.get("deps").runner(c.env);
    const members = await currentMembers(c.env);
    const memberUrls = new Set(members.map((m) => m.url));
    const statics = pool.runners.filter((r) => r.memberId === undefined && !memberUrls.has(r.url));
    const runners: { runner: Runner; member: MemberView | null }[] = [
      ...statics.map((runner, i) => ({ runner: { ...runner, index: i + 1 }, member: null })),
      ...members.map((m, i) => ({
        runner: {
          url: m.url,
          token: c.env.RUNNER_TOKEN ?? "",
          weight: m.capacity,
          baseModel: m.baseModel,
          memberId: m.id,
          index: statics.length + i + 1,
        },
        member: {
          id: m.id,
          kind: m.kind,
          baseModel: m.baseModel,
          capacity: m.capacity,
          maxLoraRank: m.maxLoraRank,
          joinedAt: new Date(m.joinedAt).toISOString(),
          leaseUntil: new Date(m.leaseUntil).toISOString(),
          drainingAt: m.drainingAt === null ? null : new Date(m.drainingAt).toISOString(),
        },
      })),
    ];
    const [reports, versions] = await Promise.all([
      Promise.all(runners.map(async ({ runner, member }) => ({ ...(await probeRunner(f, runner)), member }))),
      tenantVersions(c.env.DB, session.tenant),
    ]);
    return c.html(<RunnersPage session={session} reports={reports} versions={versions} />);
  });
}
