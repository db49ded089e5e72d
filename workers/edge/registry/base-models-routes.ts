// Base models: registered by the operator from a Hugging Face config.json; readable by every caller, since
// publishers validate against the spec locally before uploading.
import { Hono } from "hono";
import { z } from "zod";
import {
  BaseModelBoundsSchema,
  BaseModelIdSchema,
  type BaseModelResponse,
} from "../../../src/contracts/admin.ts";
import { baseModelSpecFromConfig } from "../../../src/contracts/base-model.ts";
import { parseOrThrow } from "../../../src/contracts/issues.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import type { EdgeEnv } from "../env.ts";
import { operatorOnly } from "../http/auth.ts";
import { BaseModelStore, type StoredBaseModel } from "./base-model-store.ts";

const IdParam = z.strictObject({ id: BaseModelIdSchema });

function toResponse(model: StoredBaseModel): BaseModelResponse {
  const { spec } = model;
  return {
    id: spec.id,
    fingerprint: spec.fingerprint,
    architecture: spec.architecture,
    createdAt: model.createdAt,
    spec,
  };
}

export const baseModelRoutes = new Hono<EdgeEnv>()
  .get("/base-models", async (c) => {
    const models = await new BaseModelStore(c.env.DB).list();
    return c.json({ object: "list", data: models.map(toResponse) });
  })
  // `{.+}` so ids shaped like Hugging Face repos (`org/model`) work as one segment.
  .get("/base-models/:id{.+}", validate("param", IdParam), async (c) => {
    const { id } = c.req.valid("param");
    const model = await new BaseModelStore(c.env.DB).get(id);
    if (model === null)
      throw new AppError("not_found", `base model ${JSON.stringify(id)} is not registered`, { param: "id" });
    return c.json(toResponse(model));
  })
  .put(
    "/base-models/:id{.+}",
    operatorOnly,
    validate("param", IdParam),
    validate("json", z.record(z.string(), z.unknown())),
    async (c) => {
      const { id } = c.req.valid("param");
      const config = c.req.valid("json");
      // Before the spec is built: building it allocates per layer and module, so size comes first.
      parseOrThrow(BaseModelBoundsSchema, config, "invalid_model", `base model "${id}" config.json`);
      const spec = await baseModelSpecFromConfig(id, config);
      const { model, created } = await new BaseModelStore(c.env.DB).register(spec);
      return c.json(toResponse(model), created ? 201 : 200);
    },
  );
