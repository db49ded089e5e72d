// Drives the edge app inside workerd with the real local D1 and R2 bindings. The only thing replaced is the
// outbound runner call, intercepted at `fetch` (docs/conventions.md#tests).
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { type BaseModelSpec, baseModelSpecFromConfig } from "../../../src/contracts/base-model.ts";
import { sha256Hex } from "../../../src/crypto.ts";
import { createApp } from "../../../workers/edge/app.ts";
import { createRunnerClient } from "../../../workers/edge/pool/runner-client.ts";
import { demoSpecConfig, type MakePeftAdapterOptions, makePeftAdapter } from "../../helpers/peft-files.ts";

export const ADMIN = "test-admin-token";
export const BASE = "demo-llama";

export type RunnerHandler = (request: Request) => Promise<Response> | Response;

/** What the fake runner saw, and how it answers (set per test). */
export const runner: { calls: Request[]; handler: RunnerHandler } = {
  calls: [],
  handler: () => new Response("no runner handler set", { status: 500 }),
};

/** The JSON body of the n-th call the fake runner saw. */
export async function sentBody<T = { model: string }>(n = 0): Promise<T> {
  const request = runner.calls[n];
  if (request === undefined) throw new Error(`the runner saw ${runner.calls.length} calls; wanted call ${n}`);
  return (await request.clone().json()) as T;
}

const app = createApp({
  runner: (e) =>
    createRunnerClient({
      baseUrl: e.RUNNER_URL,
      token: e.RUNNER_TOKEN,
      fetch: async (input, init) => {
        const request = new Request(input, init);
        runner.calls.push(request.clone());
        return await runner.handler(request);
      },
    }),
});

export interface CallOptions {
  token?: string;
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

export async function call(method: string, path: string, options: CallOptions = {}): Promise<Response> {
  const headers = new Headers(options.headers);
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  let body = options.body;
  if (options.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(options.json);
  }
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://edge.test${path}`, { method, headers, body }), env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/**
 * Like `call`, but the caller reads the body first and then awaits `settled`: work the edge leaves to
 * waitUntil once an answer has ended (usage records) is only known when the body has been read.
 */
export async function callOpen(
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<{ res: Response; settled: () => Promise<void> }> {
  const headers = new Headers(options.headers);
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  let body = options.body;
  if (options.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(options.json);
  }
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://edge.test${path}`, { method, headers, body }), env, ctx);
  return { res, settled: () => waitOnExecutionContext(ctx) };
}

export async function json<T = Record<string, unknown>>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`expected HTTP ${status}, got ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string; details?: string[] };
}

let counter = 0;
/** A fresh tenant with one key; names are unique so tests never share rows. */
export async function newTenant(
  scopes: string[] = ["admin", "infer"],
): Promise<{ tenant: string; key: string }> {
  const tenant = `t${Date.now().toString(36)}-${counter++}`;
  await json(await call("POST", "/admin/tenants", { token: ADMIN, json: { name: tenant } }), 201);
  const created = await json<{ key: string }>(
    await call("POST", "/admin/keys", { token: ADMIN, json: { tenant, name: "test", scopes } }),
    201,
  );
  return { tenant, key: created.key };
}

export async function newKey(tenant: string, scopes: string[]): Promise<string> {
  const res = await call("POST", "/admin/keys", { token: ADMIN, json: { tenant, name: "extra", scopes } });
  return (await json<{ key: string }>(res, 201)).key;
}

/** Registers the demo base model (idempotent) and returns its spec. */
export async function demoBase(): Promise<BaseModelSpec> {
  const res = await call("PUT", `/admin/base-models/${BASE}`, { token: ADMIN, json: demoSpecConfig() });
  if (res.status !== 200 && res.status !== 201)
    throw new Error(`base model: ${res.status} ${await res.text()}`);
  return await baseModelSpecFromConfig(BASE, demoSpecConfig());
}

export async function upload(key: string, bytes: Uint8Array, sha256?: string): Promise<Response> {
  return await call("POST", "/admin/uploads", {
    token: key,
    body: bytes,
    headers: {
      "x-content-sha256": sha256 ?? (await sha256Hex(bytes)),
      "content-type": "application/octet-stream",
    },
  });
}

export interface Published {
  name: string;
  version: number;
  weightsSha256: string;
  adapterId: string;
  aliases: string[];
}

/** Uploads and publishes; returns the raw publish response so refusals can be inspected. */
export async function publishRaw(
  key: string,
  name: string,
  files: { config: Record<string, unknown>; safetensors: Uint8Array },
  extra: Record<string, unknown> = {},
): Promise<Response> {
  const staged = await json<{ upload: string }>(await upload(key, files.safetensors), 201);
  return await call("POST", `/admin/adapters/${name}/versions`, {
    token: key,
    json: { upload: staged.upload, base: BASE, config: files.config, ...extra },
  });
}

export async function publish(
  key: string,
  name: string,
  files: { config: Record<string, unknown>; safetensors: Uint8Array },
  extra: Record<string, unknown> = {},
): Promise<Published> {
  return await json<Published>(await publishRaw(key, name, files, extra), 201);
}

export function adapterFiles(spec: BaseModelSpec, options: Partial<MakePeftAdapterOptions> = {}) {
  return makePeftAdapter({ spec, ...options });
}

/** The bytes of a content-addressed blob; fails the test when it is missing. */
export async function blobBytes(sha256: string): Promise<Uint8Array> {
  const blob = await env.ADAPTERS.get(`blobs/sha256/${sha256}`);
  if (blob === null) throw new Error(`blob ${sha256} is not in R2`);
  return new Uint8Array(await blob.arrayBuffer());
}

/** Rows a tenant owns, and objects in R2, to prove a refusal left nothing behind. */
export async function footprint(
  tenant: string,
): Promise<{ adapters: number; versions: number; aliases: number; blobs: number; uploads: number }> {
  const count = async (sql: string) =>
    ((await env.DB.prepare(sql).bind(tenant).first<{ n: number }>())?.n ?? -1) as number;
  return {
    adapters: await count("SELECT COUNT(*) AS n FROM adapters WHERE tenant = ?"),
    versions: await count(
      "SELECT COUNT(*) AS n FROM adapter_versions v JOIN adapters a ON a.id = v.adapter_id WHERE a.tenant = ?",
    ),
    aliases: await count(
      "SELECT COUNT(*) AS n FROM aliases l JOIN adapters a ON a.id = l.adapter_id WHERE a.tenant = ?",
    ),
    blobs: (await env.ADAPTERS.list({ prefix: "blobs/" })).objects.length,
    uploads: (await env.ADAPTERS.list({ prefix: `uploads/${tenant}/` })).objects.length,
  };
}
