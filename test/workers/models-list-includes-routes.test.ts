import { beforeEach, describe, expect, it } from "vitest";
import { type ModelObject, ModelListSchema } from "../../src/contracts/openai.ts";
import { adapterFiles, BASE, call, demoBase, json, newTenant, publish } from "./support/edge.ts";
import { createRoute, type Fixture, twoVersions } from "./support/experiment.ts";

let f: Fixture;

beforeEach(async () => {
  f = await twoVersions();
});

const route = (name: string) => ({
  name,
  variants: [
    { name: "control", target: "support@prod", weight: 9000 },
    { name: "treatment", target: "support@2", weight: 1000 },
  ],
});

async function models(key: string): Promise<ModelObject[]> {
  return ModelListSchema.parse(await json(await call("GET", "/v1/models", { token: key }), 200)).data;
}

const ids = (list: ModelObject[]) => list.map((m) => m.id);

describe("GET /v1/models lists the tenant's routes", () => {
  it("lists running and paused routes as the tenant's models, marked as routes", async () => {
    await createRoute(f.key, route("support-bot"));
    await createRoute(f.key, route("held"));
    await json(
      await call("POST", "/admin/routes/held/status", { token: f.key, json: { status: "paused" } }),
      200,
    );
    const list = await models(f.key);
    for (const name of ["support-bot", "held"]) {
      expect(list.filter((m) => m.id === name)).toEqual([
        {
          id: name,
          object: "model",
          created: expect.any(Number),
          owned_by: f.tenant,
          parent: null,
          lora_edge: { kind: "route" },
        },
      ]);
    }
    expect(list.find((m) => m.id === BASE)?.lora_edge).toEqual({ kind: "base" });
    expect(list.find((m) => m.id === "support@prod")?.lora_edge).toEqual({ kind: "adapter" });
  });

  it("leaves concluded routes out", async () => {
    await createRoute(f.key, route("done"));
    await createRoute(f.key, route("live"));
    await json(await call("POST", "/admin/routes/done/stop", { token: f.key }), 200);
    const listed = ids(await models(f.key));
    expect(listed).toContain("live");
    expect(listed).not.toContain("done");
  });

  it("shows a route only to its own tenant", async () => {
    await createRoute(f.key, route("private-bot"));
    const other = await newTenant();
    const listed = ids(await models(other.key));
    expect(listed).toContain(BASE);
    expect(listed).not.toContain("private-bot");
  });

  it("lists a name once, as the route, when an adapter is published under a route's name later", async () => {
    await createRoute(f.key, route("shared"));
    await publish(f.key, "shared", adapterFiles(await demoBase(), { seed: 3 }), { alias: "prod" });
    const list = await models(f.key);
    expect(list.filter((m) => m.id === "shared").map((m) => m.lora_edge)).toEqual([{ kind: "route" }]);
    expect(list.find((m) => m.id === "shared@prod")?.lora_edge).toEqual({ kind: "adapter" });
  });
});
