/** @jsxImportSource hono/jsx */
// Compare through the same service as POST /admin/compare: each model resolves in the session's tenant and
// is forwarded over the runner pool; failures come back per model, next to the answers that worked.
import type { Context } from "hono";
import { Hono } from "hono";
import { z } from "zod";
import { decimalIntegerText } from "../../../../src/contracts/admin.ts";
import { CompareRequestSchema } from "../../../../src/contracts/experiments.ts";
import { formatIssues, problemsError } from "../../../../src/contracts/issues.ts";
import { compare, compareRequest } from "../../experiments/compare.ts";
import { forwardInference, resolveModel } from "../../inference/infer.ts";
import { BaseModelStore } from "../../registry/base-model-store.ts";
import { RegistryStore } from "../../registry/registry-store.ts";
import { tenantVersions } from "../queries.ts";
import type { ConsoleEnv } from "../session.ts";
import { type CompareChoices, ComparePage } from "../views/compare.tsx";

const DEFAULT_MAX_TOKENS = 32;

const CompareForm = z.strictObject({
  csrf: z.string(),
  prompt: z.string().trim().min(1, "must not be empty").max(8000),
  // A form sends a field once per ticked box: none, one (a string) or several (an array).
  models: z.preprocess(
    (m) => (m === undefined ? [] : Array.isArray(m) ? m : [m]),
    z.array(z.string()).min(1, "must name at least one model (tick a box)"),
  ),
  // Decimal digits only: coercion would take "1e3", "0x10" and " 8".
  max_tokens: decimalIntegerText(1, 4096).default(DEFAULT_MAX_TOKENS),
});

async function choicesFor(c: Context<ConsoleEnv>): Promise<CompareChoices> {
  const tenant = c.get("session").tenant;
  const [versions, adapters, bases] = await Promise.all([
    tenantVersions(c.env.DB, tenant),
    new RegistryStore(c.env.DB).adapters(tenant),
    new BaseModelStore(c.env.DB).list(),
  ]);
  const groups = adapters.map((a) => ({
    legend: `Adapter ${a.name}`,
    models: [
      ...versions
        .filter((v) => v.name === a.name && !v.yanked)
        .reverse()
        .map((v) => `${v.name}@${v.version}`),
      ...Object.keys(a.aliases).map((alias) => `${a.name}@${alias}`),
    ],
  }));
  groups.push({ legend: "Base models", models: bases.map((b) => b.spec.id) });
  return { groups: groups.filter((g) => g.models.length > 0) };
}

function parseForm(body: Record<string, unknown>) {
  const parsed = CompareForm.safeParse(body, { reportInput: true });
  if (!parsed.success) {
    throw problemsError("invalid_request", formatIssues(parsed.error), parsed.error.issues[0]?.path);
  }
  const request = CompareRequestSchema.safeParse(
    {
      models: parsed.data.models,
      messages: [{ role: "user", content: parsed.data.prompt }],
      max_tokens: parsed.data.max_tokens,
      temperature: 0,
    },
    { reportInput: true },
  );
  if (!request.success) {
    throw problemsError("invalid_request", formatIssues(request.error), request.error.issues[0]?.path);
  }
  return { form: parsed.data, request: request.data };
}

export const comparePages = new Hono<ConsoleEnv>()
  .get("/compare", async (c) => {
    const choices = await choicesFor(c);
    const form = { prompt: "", models: [], maxTokens: DEFAULT_MAX_TOKENS };
    return c.html(<ComparePage session={c.get("session")} choices={choices} form={form} />);
  })
  .post("/compare", async (c) => {
    const { form, request } = parseForm(await c.req.parseBody({ all: true }));
    const tenant = c.get("session").tenant;
    const { path, body } = compareRequest(request);
    const runner = c.get("deps").runner(c.env);
    const requestId = c.get("requestId");
    const response = await compare(async (model) => {
      const target = await resolveModel(c.env, tenant, model);
      return {
        target,
        res: await forwardInference({ env: c.env, runner, path, body, target, requestId, tenant }),
      };
    }, request.models);
    return c.html(
      <ComparePage
        session={c.get("session")}
        choices={await choicesFor(c)}
        form={{ prompt: form.prompt, models: request.models, maxTokens: form.max_tokens }}
        response={response}
      />,
    );
  });
