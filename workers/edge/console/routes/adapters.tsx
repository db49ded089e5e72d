/** @jsxImportSource hono/jsx */
// Adapter pages and their two actions. The actions go through the admin API's stores (ReleaseStore), so the
// same checks hold: a yank is refused while an alias points at the version, an alias move is compare-and-set.
import { Hono } from "hono";
import { z } from "zod";
import { decimalIntegerText } from "../../../../src/contracts/admin.ts";
import { AdapterNameSchema, AliasNameSchema } from "../../../../src/contracts/names.ts";
import { AppError } from "../../../../src/errors.ts";
import { validate } from "../../../../src/http/validate.ts";
import { RegistryStore } from "../../registry/registry-store.ts";
import { ReleaseStore } from "../../registry/release-store.ts";
import { actorNames, aliasHistory } from "../queries.ts";
import type { ConsoleEnv } from "../session.ts";
import { AdapterListPage, AdapterPage } from "../views/adapters.tsx";
import { noticeFrom, redirectWithNotice } from "./notices.ts";

const NameParam = z.strictObject({ name: AdapterNameSchema });
// Decimal digits only, as the admin API reads them: coercion would take "1e0", "0x1", " 1" and "" (as 0).
const VersionParam = NameParam.extend({ version: decimalIntegerText(1) });

const MoveAliasForm = z.strictObject({
  csrf: z.string(),
  alias: AliasNameSchema,
  version: decimalIntegerText(1),
  /** A version number (compare-and-set), "none" (must not exist yet). */
  expected: z.union([z.literal("none"), decimalIntegerText(1)]),
});

const YankForm = z.strictObject({ csrf: z.string() });

export const adapterPages = new Hono<ConsoleEnv>()
  .get("/adapters", async (c) => {
    const session = c.get("session");
    const adapters = await new RegistryStore(c.env.DB).adapters(session.tenant);
    return c.html(<AdapterListPage session={session} adapters={adapters} />);
  })
  .get("/adapters/:name", validate("param", NameParam), async (c) => {
    const session = c.get("session");
    const { name } = c.req.valid("param");
    const registry = new RegistryStore(c.env.DB);
    const [adapter] = await registry.adapters(session.tenant, name);
    if (adapter === undefined) {
      throw new AppError("not_found", `adapter ${name} does not exist for tenant ${session.tenant}`, {
        param: "name",
      });
    }
    const [versions, history, names] = await Promise.all([
      registry.versions(session.tenant, name),
      aliasHistory(c.env.DB, session.tenant, name),
      actorNames(c.env.DB, session.tenant),
    ]);
    return c.html(
      <AdapterPage
        session={session}
        adapter={adapter}
        versions={versions}
        history={history}
        names={names}
        notice={noticeFrom(c)}
      />,
    );
  })
  .post(
    "/adapters/:name/versions/:version/yank",
    validate("param", VersionParam),
    validate("form", YankForm),
    async (c) => {
      const { tenant, keyId } = c.get("session");
      const { name, version } = c.req.valid("param");
      const registry = new RegistryStore(c.env.DB);
      await new ReleaseStore(c.env.DB, registry).yank({ tenant, name, version, actor: `key:${keyId}` });
      return redirectWithNotice(c, `/console/adapters/${name}`, "yanked");
    },
  )
  .post(
    "/adapters/:name/aliases",
    validate("param", NameParam),
    validate("form", MoveAliasForm),
    async (c) => {
      const { tenant, keyId } = c.get("session");
      const { name } = c.req.valid("param");
      const form = c.req.valid("form");
      const registry = new RegistryStore(c.env.DB);
      await new ReleaseStore(c.env.DB, registry).moveAlias({
        tenant,
        name,
        alias: form.alias,
        version: form.version,
        expected: form.expected === "none" ? null : form.expected,
        actor: `key:${keyId}`,
      });
      return redirectWithNotice(c, `/console/adapters/${name}`, "alias-moved");
    },
  );
