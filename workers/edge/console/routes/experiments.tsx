/** @jsxImportSource hono/jsx */
// Experiment pages and their actions, through the experiment services the admin API uses (results, promote,
// stop), for the session's tenant.
import type { Context } from "hono";
import { Hono } from "hono";
import { z } from "zod";
import { decimalIntegerText } from "../../../../src/contracts/admin.ts";
import type { Route } from "../../../../src/contracts/experiments.ts";
import { NameSchema, RouteNameSchema } from "../../../../src/contracts/names.ts";
import { AppError } from "../../../../src/errors.ts";
import { validate } from "../../../../src/http/validate.ts";
import { ExperimentStore, type StoredRoute } from "../../experiments/experiment-store.ts";
import { type Actor, stopRoute } from "../../experiments/experiments.ts";
import { promote } from "../../experiments/promote.ts";
import { routeResults } from "../../experiments/results.ts";
import { exposureSeries } from "../queries.ts";
import type { ConsoleEnv } from "../session.ts";
import { experimentSeries } from "../views/experiment-series.ts";
import { ExperimentListPage, ExperimentPage } from "../views/experiments.tsx";
import { noticeFrom, redirectWithNotice } from "./notices.ts";

const RouteParam = z.strictObject({ route: RouteNameSchema });
// Decimal digits only: coercion would take "1e0", "0x1", " 1" and "".
const RouteVersion = decimalIntegerText(1);
const PromoteForm = z.strictObject({
  csrf: z.string(),
  routeVersion: RouteVersion,
  variant: NameSchema,
  alias: NameSchema.refine((v) => !/^\d+$/.test(v), { message: "must not be all digits" }),
});
const StopForm = z.strictObject({ csrf: z.string(), routeVersion: RouteVersion });

function toRoute(r: StoredRoute): Route {
  return {
    name: r.name,
    status: r.status,
    version: r.version,
    winner: r.winner,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    config: r.config,
  };
}

function actorOf(c: Context<ConsoleEnv>): Actor {
  const { tenant, keyId } = c.get("session");
  return { env: c.env, store: new ExperimentStore(c.env.DB), tenant, actor: `key:${keyId}` };
}

/** The route as the form saw it: a change since then (a guardrail cut, a re-weight) refuses the action. */
async function routeAt(a: Actor, name: string, version: number): Promise<StoredRoute> {
  const route = await a.store.get(a.tenant, name);
  if (route.version !== version) {
    throw new AppError(
      "conflict",
      `route ${name} is at version ${route.version}; this page showed version ${version}. Reload and decide again`,
      { param: "routeVersion" },
    );
  }
  return route;
}

export const experimentPages = new Hono<ConsoleEnv>()
  .get("/experiments", async (c) => {
    const a = actorOf(c);
    const routes = (await a.store.list(a.tenant)).map(toRoute);
    return c.html(<ExperimentListPage session={c.get("session")} routes={routes} />);
  })
  .get("/experiments/:route", validate("param", RouteParam), async (c) => {
    const a = actorOf(c);
    const route = await a.store.get(a.tenant, c.req.valid("param").route);
    const [results, ts] = await Promise.all([
      routeResults(a.store, route),
      exposureSeries(c.env.DB, a.tenant, route.id),
    ]);
    const series = ts === null ? null : experimentSeries(ts, route.config.variants);
    return c.html(
      <ExperimentPage
        session={c.get("session")}
        route={toRoute(route)}
        results={results}
        series={series}
        notice={noticeFrom(c)}
      />,
    );
  })
  .post(
    "/experiments/:route/promote",
    validate("param", RouteParam),
    validate("form", PromoteForm),
    async (c) => {
      const a = actorOf(c);
      const { route: name } = c.req.valid("param");
      const form = c.req.valid("form");
      const route = await routeAt(a, name, form.routeVersion);
      await promote(a, route, { variant: form.variant, alias: form.alias });
      return redirectWithNotice(c, `/console/experiments/${name}`, "promoted");
    },
  )
  .post("/experiments/:route/stop", validate("param", RouteParam), validate("form", StopForm), async (c) => {
    const a = actorOf(c);
    const { route: name } = c.req.valid("param");
    await stopRoute(a, await routeAt(a, name, c.req.valid("form").routeVersion));
    return redirectWithNotice(c, `/console/experiments/${name}`, "stopped");
  });
