// Routes (A/B experiments) of the caller's tenant, their results, side-by-side compare, and feedback.
import type { Context } from "hono";
import { Hono } from "hono";
import { z } from "zod";
import {
  AssignRequestSchema,
  CompareRequestSchema,
  CreateRouteRequestSchema,
  FeedbackRequestSchema,
  PromoteRequestSchema,
  type Route,
  SetStatusRequestSchema,
  SetWeightsRequestSchema,
} from "../../../src/contracts/experiments.ts";
import { RouteNameSchema } from "../../../src/contracts/names.ts";
import { AppError } from "../../../src/errors.ts";
import { assign } from "../../../src/experiments/assign.ts";
import { validate } from "../../../src/http/validate.ts";
import type { EdgeEnv } from "../env.ts";
import { scoped, tenantWith } from "../http/auth.ts";
import { warmRoute } from "../fleet/warm.ts";
import { forwardInference, resolveModel } from "../inference/infer.ts";
import { compare, compareRequest } from "./compare.ts";
import { ExperimentStore, type StoredRoute } from "./experiment-store.ts";
import { type Actor, createRoute, setStatus, setWeights, stopRoute } from "./experiments.ts";
import { promote } from "./promote.ts";
import { routeResults } from "./results.ts";

const RouteParam = z.strictObject({ route: RouteNameSchema });

function actorOf(c: Context<EdgeEnv>): Actor {
  const { tenant, actor } = tenantWith(c, "publish");
  return { env: c.env, store: new ExperimentStore(c.env.DB), tenant, actor };
}

function view(route: StoredRoute): Route {
  return {
    name: route.name,
    status: route.status,
    version: route.version,
    winner: route.winner,
    createdAt: route.created_at,
    updatedAt: route.updated_at,
    config: route.config,
  };
}

/**
 * A route that starts (created, or resumed from paused) is about to get traffic: its variants' versions are
 * pushed to their runners after the response, as an alias move's are (fleet/warm.ts); a failed push costs
 * only the cold load the first request would have paid.
 */
function warmInBackground(c: Context<EdgeEnv>, a: Actor, route: StoredRoute): void {
  const work = warmRoute(c.env, c.get("deps").runner(c.env), a.tenant, route.config).catch((error: unknown) =>
    console.error(`warm on start of route ${route.name}:`, error),
  );
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // no execution context (app.fetch without one): the promise runs on its own
  }
}

async function routeOf(c: Context<EdgeEnv>, a: Actor): Promise<StoredRoute> {
  return await a.store.get(a.tenant, c.req.param("route") as string);
}

export const experimentRoutes = new Hono<EdgeEnv>()
  .use("/routes", scoped("publish"))
  .use("/routes/*", scoped("publish"))
  .use("/compare", scoped("publish"))
  .post("/routes", validate("json", CreateRouteRequestSchema), async (c) => {
    const a = actorOf(c);
    const route = await createRoute(a, c.req.valid("json"));
    warmInBackground(c, a, route);
    return c.json(view(route), 201);
  })
  .get("/routes", async (c) => {
    const a = actorOf(c);
    return c.json({ object: "list", data: (await a.store.list(a.tenant)).map(view) });
  })
  .get("/routes/:route", validate("param", RouteParam), async (c) => {
    const a = actorOf(c);
    return c.json(view(await routeOf(c, a)));
  })
  .put(
    "/routes/:route/weights",
    validate("param", RouteParam),
    validate("json", SetWeightsRequestSchema),
    async (c) => {
      const a = actorOf(c);
      const { weights, expectedVersion } = c.req.valid("json");
      return c.json(view(await setWeights(a, await routeOf(c, a), weights, expectedVersion)));
    },
  )
  .post(
    "/routes/:route/status",
    validate("param", RouteParam),
    validate("json", SetStatusRequestSchema),
    async (c) => {
      const a = actorOf(c);
      const { status, expectedVersion } = c.req.valid("json");
      const before = await routeOf(c, a);
      const route = await setStatus(a, before, status, expectedVersion);
      if (before.status === "paused" && route.status === "running") warmInBackground(c, a, route);
      return c.json(view(route));
    },
  )
  .post("/routes/:route/stop", validate("param", RouteParam), async (c) => {
    const a = actorOf(c);
    return c.json(view(await stopRoute(a, await routeOf(c, a))));
  })
  .post(
    "/routes/:route/promote",
    validate("param", RouteParam),
    validate("json", PromoteRequestSchema),
    async (c) => {
      const a = actorOf(c);
      const promoted = await promote(a, await routeOf(c, a), c.req.valid("json"));
      return c.json({ ...promoted, route: view(promoted.route) });
    },
  )
  .get("/routes/:route/results", validate("param", RouteParam), async (c) => {
    const a = actorOf(c);
    return c.json(await routeResults(a.store, await routeOf(c, a)));
  })
  // What the split says for each subject now (ignoring status): for checking a split before sending traffic.
  .post(
    "/routes/:route/assignments",
    validate("param", RouteParam),
    validate("json", AssignRequestSchema),
    async (c) => {
      const a = actorOf(c);
      const route = await routeOf(c, a);
      const variants = c.req
        .valid("json")
        .subjects.map((s) => assign(route.name, route.config, s).variant.name);
      return c.json({ version: route.version, variants });
    },
  )
  .post("/compare", validate("json", CompareRequestSchema), async (c) => {
    const { tenant } = tenantWith(c, "publish");
    const request = c.req.valid("json");
    const { path, body } = compareRequest(request);
    const runner = c.get("deps").runner(c.env);
    const requestId = c.get("requestId");
    return c.json(
      await compare(async (model) => {
        const target = await resolveModel(c.env, tenant, model);
        return {
          target,
          res: await forwardInference({ env: c.env, runner, path, body, target, requestId, tenant }),
        };
      }, request.models),
    );
  });

export const feedbackRoutes = new Hono<EdgeEnv>().post(
  "/feedback",
  scoped("infer"),
  validate("json", FeedbackRequestSchema),
  async (c) => {
    const { tenant } = tenantWith(c, "infer");
    const f = c.req.valid("json");
    const recorded = await new ExperimentStore(c.env.DB).recordFeedback(
      tenant,
      f.request_id,
      f.score ?? null,
      f.label ?? null,
    );
    if (!recorded) {
      // Another tenant's request reads exactly like one that never happened.
      throw new AppError(
        "not_found",
        `request_id: no request ${JSON.stringify(f.request_id)} on a route of tenant ${tenant}`,
        {
          param: "request_id",
        },
      );
    }
    return c.json({ request_id: f.request_id, recorded: true });
  },
);
