/** @jsxImportSource hono/jsx */
// The runners page: every runner of the pool probed in parallel, its residents matched to this tenant's
// versions by content id.
import { Hono } from "hono";
import { tenantVersions } from "../queries.ts";
import { probeRunner, type RunnerFetch } from "../runner-probe.ts";
import type { ConsoleEnv } from "../session.ts";
import { RunnersPage } from "../views/runners.tsx";

export type { RunnerFetch };

export function runnerPages(f: RunnerFetch) {
  return new Hono<ConsoleEnv>().get("/runners", async (c) => {
    const session = c.get("session");
    const pool = c.get("deps").runner(c.env);
    const [reports, versions] = await Promise.all([
      Promise.all(pool.runners.map((r) => probeRunner(f, r))),
      tenantVersions(c.env.DB, session.tenant),
    ]);
    return c.html(<RunnersPage session={session} reports={reports} versions={versions} />);
  });
}
