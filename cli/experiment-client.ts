// A small client for the edge's routes API (A/B experiments), used by `npm run experiment`. Answers are
// parsed with the same schemas the edge answers with; refusals become EdgeError with the edge's message.
import { z } from "zod";
import {
  CompareResponseSchema,
  type CreateRouteRequestSchema,
  type Results,
  ResultsSchema,
  type Route,
  RouteSchema,
} from "../src/contracts/experiments.ts";
import { createEdgeSender, type EdgeClientOptions, parseEdgeAnswer } from "./edge-client.ts";

const PromotedSchema = z.strictObject({
  route: RouteSchema,
  alias: z.string(),
  adapter: z.string(),
  version: z.number().int(),
  previous: z.number().int().nullable(),
});
export type Promoted = z.infer<typeof PromotedSchema>;
const RouteListSchema = z.strictObject({ object: z.literal("list"), data: z.array(RouteSchema) });

export function createExperimentClient(options: EdgeClientOptions) {
  const send = createEdgeSender(options);
  const route = (name: string) => `/admin/routes/${encodeURIComponent(name)}`;
  return {
    async create(request: z.input<typeof CreateRouteRequestSchema>): Promise<Route> {
      return await parseEdgeAnswer(await send("POST", "/admin/routes", request), RouteSchema, "create");
    },
    async list(): Promise<Route[]> {
      return (await parseEdgeAnswer(await send("GET", "/admin/routes"), RouteListSchema, "list")).data;
    },
    async show(name: string): Promise<Route> {
      return await parseEdgeAnswer(await send("GET", route(name)), RouteSchema, "show");
    },
    async results(name: string): Promise<Results> {
      return await parseEdgeAnswer(await send("GET", `${route(name)}/results`), ResultsSchema, "results");
    },
    async setWeights(
      name: string,
      weights: Record<string, number>,
      expectedVersion?: number,
    ): Promise<Route> {
      const body = { weights, ...(expectedVersion === undefined ? {} : { expectedVersion }) };
      return await parseEdgeAnswer(
        await send("PUT", `${route(name)}/weights`, body),
        RouteSchema,
        "set-weights",
      );
    },
    async setStatus(name: string, status: "running" | "paused"): Promise<Route> {
      return await parseEdgeAnswer(
        await send("POST", `${route(name)}/status`, { status }),
        RouteSchema,
        status,
      );
    },
    async stop(name: string): Promise<Route> {
      return await parseEdgeAnswer(await send("POST", `${route(name)}/stop`), RouteSchema, "stop");
    },
    async promote(name: string, variant: string, alias: string, expected?: number | null): Promise<Promoted> {
      const body = { variant, alias, ...(expected === undefined ? {} : { expected }) };
      return await parseEdgeAnswer(
        await send("POST", `${route(name)}/promote`, body),
        PromotedSchema,
        "promote",
      );
    },
    async compare(models: string[], prompt: string, maxTokens: number) {
      const body = { models, messages: [{ role: "user", content: prompt }], max_tokens: maxTokens };
      return await parseEdgeAnswer(
        await send("POST", "/admin/compare", body),
        CompareResponseSchema,
        "compare",
      );
    },
  };
}

export type ExperimentClient = ReturnType<typeof createExperimentClient>;
