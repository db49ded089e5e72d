// Helpers for route (A/B experiment) tests: two published versions of one adapter, a fake runner that
// answers per adapter, and small wrappers around the routes API.
import { env } from "cloudflare:workers";
import { adapterFiles, call, demoBase, json, newTenant, publish, runner } from "./edge.ts";

export interface Fixture {
  tenant: string;
  key: string;
  /** Runner adapter id → "support@N", so the fake runner can answer as that version. */
  labels: Map<string, string>;
}

/** A tenant with support@1 (alias prod) and support@2 published. */
export async function twoVersions(): Promise<Fixture> {
  const spec = await demoBase();
  const { tenant, key } = await newTenant();
  const v1 = await publish(key, "support", adapterFiles(spec, { seed: 1 }), { alias: "prod" });
  const v2 = await publish(key, "support", adapterFiles(spec, { seed: 2 }));
  return {
    tenant,
    key,
    labels: new Map([
      [v1.adapterId, "support@1"],
      [v2.adapterId, "support@2"],
    ]),
  };
}

/** Answers every inference as the adapter it was sent to; `fail` names versions that answer 500. */
export function answerAs(f: Fixture, fail: string[] = []): void {
  runner.calls = [];
  runner.handler = async (request) => {
    const body = (await request.clone().json()) as { model: string };
    const label = f.labels.get(body.model) ?? body.model;
    if (fail.includes(label)) {
      return Response.json(
        { error: { message: "boom", type: "server_error", param: null, code: "internal_error" } },
        { status: 500 },
      );
    }
    return Response.json({
      id: "c1",
      object: "chat.completion",
      created: 1,
      model: body.model,
      choices: [
        { index: 0, message: { role: "assistant", content: `from ${label}` }, finish_reason: "stop" },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 },
    });
  };
}

export const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "hello" }],
  ...extra,
});

export async function createRoute(key: string, body: Record<string, unknown>, status = 201) {
  return await json<{
    name: string;
    version: number;
    config: { salt: string; variants: { name: string }[] };
  }>(await call("POST", "/admin/routes", { token: key, json: body }), status);
}

/** The split's answer for each subject, from the edge itself. */
export async function assignments(key: string, route: string, subjects: string[]): Promise<string[]> {
  const res = await call("POST", `/admin/routes/${route}/assignments`, { token: key, json: { subjects } });
  return (await json<{ variants: string[] }>(res, 200)).variants;
}

export async function infer(
  key: string,
  model: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
) {
  const res = await call("POST", "/v1/chat/completions", { token: key, json: chat(model, extra), headers });
  const text = await res.text();
  return { res, status: res.status, variant: res.headers.get("x-variant"), text };
}

export interface ExposureRow {
  request_id: string;
  variant: string;
  shadow: number;
  adapter: string | null;
  subject_hash: string | null;
  status: number;
  error: number;
  latency_ms: number;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  route_version: number;
}

export async function exposures(tenant: string): Promise<ExposureRow[]> {
  const { results } = await env.DB.prepare("SELECT * FROM exposures WHERE tenant = ? ORDER BY created_at")
    .bind(tenant)
    .all<ExposureRow>();
  return results;
}

export const subjects = (n: number, prefix = "user") => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
