// A fleet at the edge for workers-ring tests: the real app over real local D1 and R2 with a members-only pool,
// whose outbound runner calls (the only thing intercepted) are recorded and answered like a runner would.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { BaseModelSpec } from "../../../src/contracts/base-model.ts";
import type { JoinRequest, JoinResponse } from "../../../src/contracts/fleet.ts";
import { sha256Hex } from "../../../src/crypto.ts";
import { createApp } from "../../../workers/edge/app.ts";
import { fleetMembers } from "../../../workers/edge/fleet/fleet.ts";
import { parsePoolConfig } from "../../../workers/edge/pool/pool-config.ts";
import { rank } from "../../../workers/edge/pool/rendezvous.ts";
import { createRunnerClient } from "../../../workers/edge/pool/runner-client.ts";
import { ADMIN, adapterFiles, BASE, json } from "./edge.ts";

export interface Seen {
  url: string;
  method: string;
}

/** What the members were sent, in order; tests empty it between steps. */
export const seen: Seen[] = [];

/** Paths of the adapter pushes (PUT /v1/adapters/{id}) as origin + path. */
export const pushes = () =>
  seen.filter((s) => s.method === "PUT").map((s) => `${new URL(s.url).origin}${new URL(s.url).pathname}`);

async function fakeRunner(request: Request): Promise<Response> {
  seen.push({ url: request.url, method: request.method });
  if (request.method === "PUT") await request.arrayBuffer();
  if (request.method === "GET") return new Response("{}", { status: 404 });
  return Response.json({ ok: true }, { status: request.method === "PUT" ? 201 : 200 });
}

const app = createApp({
  runner: (e) =>
    createRunnerClient({
      pool: parsePoolConfig({ RUNNERS: "[]", RUNNER_TOKEN: e.RUNNER_TOKEN }),
      members: fleetMembers(e),
      fetch: async (input, init) => await fakeRunner(new Request(input, init)),
    }),
});

/** One request through the edge, waiting for its background work (waitUntil) before returning. */
export async function call(method: string, path: string, token: string, body?: unknown): Promise<Response> {
  const headers = new Headers({ authorization: `Bearer ${token}` });
  let payload: BodyInit | undefined;
  if (body instanceof Uint8Array) {
    headers.set("content-type", "application/octet-stream");
    headers.set("x-content-sha256", await sha256Hex(body));
    payload = body;
  } else if (body !== undefined) {
    headers.set("content-type", "application/json");
    payload = JSON.stringify(body);
  }
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request(`http://edge.test${path}`, { method, headers, body: payload }),
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

export function member(spec: BaseModelSpec, url: string, extra: Partial<JoinRequest> = {}): JoinRequest {
  return {
    url,
    kind: "runner",
    baseModel: BASE,
    baseModelFingerprint: spec.fingerprint,
    capacity: 1,
    maxLoraRank: 64,
    targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    slots: 8,
    context: 2048,
    version: "0.1.0",
    ...extra,
  };
}

export async function join(request: JoinRequest, fleetKey: string): Promise<JoinResponse> {
  return await json<JoinResponse>(await call("POST", "/admin/runners", fleetKey, request), 201);
}

/** A fleet key (scope runner), made by the operator in a tenant of its own. */
export async function makeFleetKey(tenant: string): Promise<{ key: string; id: string }> {
  return await json<{ key: string; id: string }>(
    await call("POST", "/admin/keys", ADMIN, { tenant, name: "fleet", scopes: ["runner"] }),
    201,
  );
}

export async function publishVersion(
  spec: BaseModelSpec,
  key: string,
  name: string,
  options: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<Response> {
  const files = await adapterFiles(spec, options);
  const staged = await json<{ upload: string }>(
    await call("POST", "/admin/uploads", key, files.safetensors),
    201,
  );
  return await call("POST", `/admin/adapters/${name}/versions`, key, {
    upload: staged.upload,
    base: BASE,
    config: files.config,
    ...extra,
  });
}

/** The member rendezvous hashing alone picks for `adapterId` among `urls` (equal capacities). */
export function ownerOf(urls: readonly string[], adapterId: string): string | undefined {
  const candidates = urls.map((url) => ({ url, weight: 1, inFlight: 0, healthy: true, resident: false }));
  return rank(candidates, adapterId)[0]?.url;
}
