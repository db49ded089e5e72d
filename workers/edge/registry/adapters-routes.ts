// Adapters of the caller's tenant: publish, list, show, download a version's files, move aliases
// (compare-and-set), yank, audit.
import type { Context } from "hono";
import { Hono } from "hono";
import { z } from "zod";
import { PEFT_WEIGHTS_FILE } from "../../../src/adapters/peft-files.ts";
import {
  decimalIntegerText,
  MoveAliasRequestSchema,
  PublishVersionRequestSchema,
  type VersionResponse,
} from "../../../src/contracts/admin.ts";
import { AdapterNameSchema, AliasNameSchema } from "../../../src/contracts/names.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import type { EdgeEnv } from "../env.ts";
import { checkServable, kindsOf } from "../fleet/limits.ts";
import { warmVersion } from "../fleet/warm.ts";
import { scoped, tenantWith } from "../http/auth.ts";
import { parseJsonBody, readJsonBody } from "../http/json-body.ts";
import { BaseModelStore } from "./base-model-store.ts";
import { BlobStore } from "./blob-store.ts";
import { discardRefusedUpload, publishVersion } from "./publish.ts";
import { RegistryStore, type VersionRow } from "./registry-store.ts";
import { ReleaseStore } from "./release-store.ts";
import { UploadStore } from "./upload-store.ts";

const NameParam = z.strictObject({ name: AdapterNameSchema });
const VersionParam = NameParam.extend({ version: decimalIntegerText(1) });
/** Just enough of a publish body to find the upload it names, when the whole body is refused. */
const NamedUpload = z.looseObject({ upload: z.uuid() });
const AliasParam = NameParam.extend({ alias: AliasNameSchema });

function maxRank(env: Env): number {
  const value = Number(env.MAX_LORA_RANK);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new AppError(
      "internal_error",
      `MAX_LORA_RANK: must be a positive integer; got ${JSON.stringify(env.MAX_LORA_RANK)}`,
    );
  }
  return value;
}

async function versionResponse(
  registry: RegistryStore,
  tenant: string,
  row: VersionRow,
): Promise<VersionResponse> {
  const [adapter] = await registry.adapters(tenant, row.name);
  const aliases = Object.entries(adapter?.aliases ?? {})
    .filter(([, v]) => v === row.version)
    .map(([alias]) => alias);
  return {
    name: row.name,
    version: row.version,
    weightsSha256: row.weights_sha256,
    adapterId: row.runner_adapter_id,
    sizeBytes: row.weights_size,
    baseModel: row.base_model_id,
    createdAt: row.created_at,
    yankedAt: row.yanked_at,
    aliases,
    manifest: row.manifest,
    unservable:
      row.unservable_reason === null
        ? null
        : { reason: row.unservable_reason, at: row.unservable_at ?? row.created_at },
  };
}

/** Work after the response (waitUntil); its failure is logged, never the caller's. */
function inBackground(c: Context<EdgeEnv>, work: Promise<unknown>): void {
  const logged = work.catch((error: unknown) => console.error("warm push failed:", error));
  try {
    c.executionCtx.waitUntil(logged);
  } catch {
    // no execution context (app.fetch without one): the promise runs on its own
  }
}

function registryOf(c: Context<EdgeEnv>): RegistryStore {
  return new RegistryStore(c.env.DB);
}

export const adapterRoutes = new Hono<EdgeEnv>()
  .use("/adapters", scoped("publish"))
  .use("/adapters/*", scoped("publish"))
  .post("/adapters/:name/versions", validate("param", NameParam), async (c) => {
    const { tenant, actor } = tenantWith(c, "publish");
    const registry = registryOf(c);
    const stores = { blobs: new BlobStore(c.env.ADAPTERS), uploads: new UploadStore(c.env.DB) };
    // Not validate("json"): a body the schema refuses still names an upload, which a refusal must delete
    // (docs/architecture.md#invariants).
    const body = await readJsonBody(c);
    let request: z.output<typeof PublishVersionRequestSchema>;
    try {
      request = parseJsonBody(PublishVersionRequestSchema, body);
    } catch (error) {
      const named = NamedUpload.safeParse(body);
      if (named.success) await discardRefusedUpload(stores, tenant, named.data.upload);
      throw error;
    }
    const runners = c.get("deps").runner(c.env);
    const row = await publishVersion(
      {
        ...stores,
        registry,
        baseModels: new BaseModelStore(c.env.DB),
        maxRank: maxRank(c.env),
        checkServable: (needs) => checkServable(c.env, runners, { ...needs, kinds: kindsOf(needs.modules) }),
      },
      { tenant, actor, name: c.req.valid("param").name, request },
    );
    // Published under an alias: traffic is about to come, so its runner gets it before the first request.
    if (request.alias !== undefined) inBackground(c, warmVersion(c.env, runners, row));
    return c.json(await versionResponse(registry, tenant, row), 201);
  })
  .get("/adapters", async (c) => {
    const { tenant } = tenantWith(c, "publish");
    return c.json({ object: "list", data: await registryOf(c).adapters(tenant) });
  })
  .get("/adapters/:name", validate("param", NameParam), async (c) => {
    const { tenant } = tenantWith(c, "publish");
    const { name } = c.req.valid("param");
    const registry = registryOf(c);
    const [adapter] = await registry.adapters(tenant, name);
    if (adapter === undefined)
      throw new AppError("not_found", `adapter ${name} does not exist`, { param: "name" });
    const versions = await registry.versions(tenant, name);
    const data = versions.map((v) => ({
      version: v.version,
      weightsSha256: v.weights_sha256,
      adapterId: v.runner_adapter_id,
      sizeBytes: v.weights_size,
      createdAt: v.created_at,
      yankedAt: v.yanked_at,
      unservable: v.unservable_reason,
    }));
    return c.json({ ...adapter, versions: data });
  })
  .get("/adapters/:name/versions/:version", validate("param", VersionParam), async (c) => {
    const { tenant } = tenantWith(c, "publish");
    const { name, version } = c.req.valid("param");
    const registry = registryOf(c);
    return c.json(await versionResponse(registry, tenant, await registry.version(tenant, name, version)));
  })
  .put(
    "/adapters/:name/aliases/:alias",
    validate("param", AliasParam),
    validate("json", MoveAliasRequestSchema),
    async (c) => {
      const { tenant, actor } = tenantWith(c, "publish");
      const { name, alias } = c.req.valid("param");
      const { version, expected } = c.req.valid("json");
      const moved = await new ReleaseStore(c.env.DB, registryOf(c)).moveAlias({
        tenant,
        name,
        alias,
        version,
        expected,
        actor,
      });
      inBackground(
        c,
        registryOf(c)
          .version(tenant, name, version)
          .then((row) => warmVersion(c.env, c.get("deps").runner(c.env), row)),
      );
      return c.json({ name, ...moved });
    },
  )
  .get(
    "/adapters/:name/versions/:version/files/adapter_model.safetensors",
    validate("param", VersionParam),
    async (c) => {
      const { tenant } = tenantWith(c, "publish");
      const { name, version } = c.req.valid("param");
      // Yanked versions stay downloadable by number: a yank stops serving, not auditing or re-evaluating.
      const row = await registryOf(c).version(tenant, name, version);
      const blob = await new BlobStore(c.env.ADAPTERS).blob(row.weights_sha256);
      if (blob === null)
        throw new AppError("internal_error", `blob ${row.weights_sha256} of ${name}@${version} is missing`);
      return new Response(blob.body, {
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(blob.size),
          // RFC 9110 §8.8.3: an entity-tag is quoted; the content digest is a strong validator.
          etag: `"${row.weights_sha256}"`,
          "x-content-sha256": row.weights_sha256,
          "content-disposition": `attachment; filename="${PEFT_WEIGHTS_FILE}"`,
        },
      });
    },
  )
  .get(
    "/adapters/:name/versions/:version/files/adapter_config.json",
    validate("param", VersionParam),
    async (c) => {
      const { tenant } = tenantWith(c, "publish");
      const { name, version } = c.req.valid("param");
      return c.json((await registryOf(c).version(tenant, name, version)).config);
    },
  )
  .post("/adapters/:name/versions/:version/yank", validate("param", VersionParam), async (c) => {
    const { tenant, actor } = tenantWith(c, "admin");
    const { name, version } = c.req.valid("param");
    const yankedAt = await new ReleaseStore(c.env.DB, registryOf(c)).yank({ tenant, name, version, actor });
    return c.json({ name, version, yankedAt });
  });
