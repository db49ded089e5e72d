// Property-based fuzzing (fast-check) of every edge route that reads a body, inside workerd with real D1 and
// R2: random JSON values, text that is not JSON, and objects built from the route's own schema fields with
// values both plausible (real names, uploads, versions, so bodies get past the schema into the handlers) and
// hostile. Whatever arrives, the edge never answers 5xx, and every 4xx is OpenAI's error envelope
// (docs/conventions.md#errors). A failure prints the seed and the shrunk body that broke it.
import fc from "fast-check";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { z } from "zod";
import { CompleteMultipartRequestSchema } from "../../src/contracts/admin.ts";
import * as admin from "../../src/contracts/admin.ts";
import * as experiments from "../../src/contracts/experiments.ts";
import * as fleet from "../../src/contracts/fleet.ts";
import * as keys from "../../src/contracts/keys.ts";
import * as limits from "../../src/contracts/limits.ts";
import * as openai from "../../src/contracts/openai.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { demoSpecConfig, peftConfigJson } from "../helpers/peft-files.ts";
import {
  ADMIN,
  adapterFiles,
  BASE,
  call,
  demoBase,
  json,
  newTenant,
  publish,
  runner,
  upload,
} from "./support/edge.ts";

/** Cases per route; the whole file runs ROUTES × this many requests through workerd. */
const RUNS_PER_ROUTE = 100;
/** A route's cases take about a second alone; the shared CI machine gets headroom, not a timing claim. */
const ROUTE_TIMEOUT_MS = 120_000;

const completion = {
  id: "cmpl-1",
  object: "chat.completion",
  created: 1,
  model: "x",
  choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
};

/** A well-behaved runner: what reaches it is the edge's doing, and a 5xx must never be the runner's. */
async function fakeRunner(request: Request): Promise<Response> {
  const path = new URL(request.url).pathname;
  if (request.method === "PUT" && path.startsWith("/v1/adapters/")) {
    await request.body?.cancel();
    return Response.json({ id: path.split("/").pop(), loaded: true }, { status: 201 });
  }
  if (request.method !== "POST") return Response.json({ object: "list", data: [] });
  const body = (await request.json().catch(() => ({}))) as { stream?: boolean };
  if (body.stream === true) {
    const chunk = {
      ...completion,
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta: { content: "hi" } }],
    };
    return new Response(`data: ${JSON.stringify(chunk)}\n\ndata: [DONE]\n\n`, {
      headers: { "content-type": "text/event-stream" },
    });
  }
  return Response.json(completion);
}

/** The field names of an object schema, through the pipes and refinements around it. */
function fieldsOf(schema: z.ZodType): string[] {
  let node: unknown = schema;
  for (let depth = 0; depth < 8 && node !== undefined; depth++) {
    const def = (node as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    const shape =
      (node as { shape?: Record<string, unknown> }).shape ?? (def?.shape as Record<string, unknown>);
    if (shape !== undefined) return Object.keys(shape);
    node = def?.in ?? def?.schema ?? def?.innerType;
  }
  throw new Error("no object shape in schema");
}

const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    -1,
    0,
    -0,
    0.5,
    1e308,
    -1e308,
    2 ** 53,
    2 ** 63,
    "",
    " ",
    "0x1",
    "1e3",
    "__proto__",
    "../../etc",
    "\u0000",
    "é".repeat(300),
    [],
    {},
    null,
    true,
    [null],
    { __proto__: { admin: true } },
  ),
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double(),
);

interface Fixture {
  key: string;
  tenant: string;
  uploads: string[];
  multipart: { upload: string; uploadId: string; part: { partNumber: number; etag: string } };
  keyId: string;
  fleetKey: string;
  memberId: string;
  otherTenant: string;
  fingerprint: string;
}

let f: Fixture;

/** Plausible values by field name, so that some bodies are valid and reach the handlers' own checks. */
function plausible(field: string): fc.Arbitrary<unknown> | undefined {
  const messages = fc.array(
    fc.record(
      {
        role: fc.constantFrom("user", "system", "assistant", "tool", "developer", "robot"),
        content: fc.oneof(
          fc.string({ maxLength: 20 }),
          fc.array(fc.record({ type: fc.constantFrom("text", "image_url"), text: fc.string() }), {
            maxLength: 2,
          }),
          oddValue,
        ),
      },
      { requiredKeys: ["role"] },
    ),
    { maxLength: 3 },
  );
  const table: Record<string, fc.Arbitrary<unknown>> = {
    model: fc.constantFrom(BASE, "fz", "fz@1", "fz@2", "fz@prod", "fz-route", "fz@0x1", "nope@9", "other/x"),
    models: fc.array(fc.constantFrom(BASE, "fz@1", "fz@prod", "nope"), { maxLength: 3 }),
    messages,
    prompt: fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
      fc.array(fc.nat(50), { maxLength: 4 }),
    ),
    max_tokens: fc.oneof(fc.integer({ min: -1, max: 10 }), fc.constant(2 ** 31)),
    stream: fc.boolean(),
    n: fc.integer({ min: 0, max: 3 }),
    name: fc.constantFrom("fz", "fz-route", "fz-new", "Bad Name", "x".repeat(200)),
    tenant: fc.constant(f.tenant),
    scopes: fc.array(fc.constantFrom("infer", "publish", "admin", "runner", "root"), { maxLength: 3 }),
    expiresAt: fc.oneof(
      fc.constantFrom("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "tomorrow"),
      fc.date().map((d) => (Number.isNaN(d.getTime()) ? "x" : d.toISOString())),
    ),
    limits: fc.record({ requestsPerMinute: oddValue, tokensPerMinute: oddValue }, { requiredKeys: [] }),
    sha256: fc.oneof(fc.constant("ab".repeat(32)), fc.stringMatching(/^[0-9a-f]{0,70}$/)),
    upload: fc.constantFrom(...f.uploads, crypto.randomUUID(), "not-a-uuid"),
    uploadId: fc.constantFrom(f.multipart.uploadId, "nope"),
    parts: fc.oneof(
      fc.constant([f.multipart.part]),
      fc.array(
        fc.record({ partNumber: fc.integer({ min: -1, max: 10_001 }), etag: fc.string({ maxLength: 40 }) }),
        { maxLength: 3 },
      ),
    ),
    base: fc.constantFrom(BASE, "nope", ""),
    config: fc
      .tuple(
        fc.dictionary(
          fc.constantFrom(
            "r",
            "lora_alpha",
            "target_modules",
            "rank_pattern",
            "peft_type",
            "use_dora",
            "layers_to_transform",
          ),
          oddValue,
          { maxKeys: 2 },
        ),
        fc.boolean(),
      )
      .map(([over, keep]) => (keep ? peftConfigJson({ r: 4 }) : { ...peftConfigJson({ r: 4 }), ...over })),
    alias: fc.constantFrom("prod", "canary", "Bad Alias", ""),
    version: fc.oneof(fc.constantFrom(1, 2, 3, 0, -1, 1.5), oddValue),
    expected: fc.constantFrom(null, 1, 2, 99, "1"),
    expectedVersion: fc.integer({ min: -1, max: 5 }),
    parentVersion: fc.constantFrom(1, 2, 7),
    variants: fc.array(
      fc.record(
        {
          name: fc.constantFrom("a", "b", "c"),
          target: fc.constantFrom("fz@1", "fz@2", BASE, "nope@1"),
          weight: fc.constantFrom(0, 5000, 10_000, 10_001, -1),
        },
        { requiredKeys: ["name"] },
      ),
      { maxLength: 3 },
    ),
    weights: fc.dictionary(fc.constantFrom("a", "b", "c"), fc.integer({ min: -1, max: 10_001 }), {
      maxKeys: 3,
    }),
    status: fc.constantFrom("running", "paused", "concluded", "draft", "nope"),
    variant: fc.constantFrom("a", "b", "nope"),
    subjects: fc.array(fc.string({ maxLength: 10 }), { maxLength: 5 }),
    control: fc.constantFrom("a", "b", "nope"),
    request_id: fc.string({ maxLength: 40 }),
    score: fc.double(),
    url: fc.constantFrom("http://127.0.0.1:9", "https://runner.example", "ftp://x", "not a url", ""),
    kind: fc.constantFrom("runner", "vllm", "other"),
    baseModel: fc.constantFrom(BASE, "nope"),
    capacity: fc.integer({ min: -1, max: 1000 }),
    slots: fc.integer({ min: -1, max: 1000 }),
    resident: fc.array(fc.record({ adapterId: fc.string(), requests: fc.integer() }), { maxLength: 2 }),
    draining: fc.boolean(),
  };
  return table[field];
}

/**
 * A body for a route: mostly a valid body with a few fields replaced, dropped or added (so cases reach the
 * handlers past the schema), else an object made of the route's fields, a random JSON value, or not JSON.
 */
function bodyFor(route: Route): fc.Arbitrary<{ text: string }> {
  const value = (field: string) => {
    const known = plausible(field);
    return known === undefined
      ? oddValue
      : fc.oneof({ weight: 3, arbitrary: known }, { weight: 1, arbitrary: oddValue });
  };
  const field = fc.constantFrom(...route.fields);
  const mutation = fc.oneof(
    { weight: 4, arbitrary: field.chain((k) => value(k).map((v) => ({ set: k, v }))) },
    { weight: 1, arbitrary: field.map((k) => ({ drop: k })) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.string({ maxLength: 6 }), oddValue).map(([k, v]) => ({ set: k, v })),
    },
  );
  const mutated = fc.array(mutation, { maxLength: 3 }).map((changes) => {
    const body: Record<string, unknown> = route.valid();
    for (const change of changes) {
      if ("drop" in change) delete body[change.drop];
      else body[change.set] = change.v;
    }
    return { text: JSON.stringify(body) };
  });
  const objects = fc
    .record(Object.fromEntries(route.fields.map((k) => [k, value(k)])), { requiredKeys: [] })
    .map((known) => ({ text: JSON.stringify(known) }));
  return fc.oneof(
    { weight: 6, arbitrary: mutated },
    { weight: 2, arbitrary: objects },
    {
      weight: 1,
      arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => ({ text: JSON.stringify(v) ?? "null" })),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map((text) => ({ text })) },
  );
}

interface Route {
  method: string;
  /** The path with the fixture's ids put in when the test runs. */
  path: () => string;
  label: string;
  token: () => string;
  fields: string[];
  /** A body the route accepts (when the fixture's state allows it). */
  valid: () => Record<string, unknown>;
}

const unique = () => `fz${crypto.randomUUID().slice(0, 8)}`;
const hi = [{ role: "user", content: "hi" }];

function joinBody(): Record<string, unknown> {
  return {
    url: "http://127.0.0.1:9",
    kind: "runner",
    baseModel: BASE,
    baseModelFingerprint: f.fingerprint,
    capacity: 1,
    maxLoraRank: 64,
    targetModules: ["q_proj", "v_proj"],
    slots: 8,
    context: 2048,
    version: "0.1.0",
  };
}

const ROUTES: Route[] = [
  {
    method: "POST",
    path: () => "/v1/chat/completions",
    label: "/v1/chat/completions",
    token: () => f.key,
    fields: fieldsOf(openai.ChatCompletionRequestSchema),
    valid: () => ({ model: "fz@prod", messages: hi, max_tokens: 4 }),
  },
  {
    method: "POST",
    path: () => "/v1/completions",
    label: "/v1/completions",
    token: () => f.key,
    fields: fieldsOf(openai.CompletionRequestSchema),
    valid: () => ({ model: "fz@1", prompt: "hi", max_tokens: 4 }),
  },
  {
    method: "POST",
    path: () => "/v1/feedback",
    label: "/v1/feedback",
    token: () => f.key,
    fields: fieldsOf(experiments.FeedbackRequestSchema),
    valid: () => ({ request_id: "req-1", score: 1 }),
  },
  {
    method: "POST",
    path: () => "/admin/tenants",
    label: "/admin/tenants",
    token: () => ADMIN,
    fields: fieldsOf(admin.CreateTenantRequestSchema),
    valid: () => ({ name: unique() }),
  },
  {
    method: "PATCH",
    path: () => `/admin/tenants/${f.otherTenant}`,
    label: "/admin/tenants/:name",
    token: () => ADMIN,
    fields: fieldsOf(limits.UpdateTenantRequestSchema),
    valid: () => ({ limits: { requestsPerMinute: 1000 } }),
  },
  {
    method: "POST",
    path: () => "/admin/keys",
    label: "/admin/keys",
    token: () => f.key,
    fields: fieldsOf(keys.CreateApiKeyRequestSchema),
    valid: () => ({ tenant: f.tenant, name: "k", scopes: ["infer"] }),
  },
  {
    method: "PATCH",
    path: () => `/admin/keys/${f.keyId}`,
    label: "/admin/keys/:id",
    token: () => f.key,
    fields: fieldsOf(limits.UpdateApiKeyRequestSchema),
    valid: () => ({ limits: { requestsPerMinute: 1000 } }),
  },
  {
    method: "PUT",
    path: () => "/admin/base-models/fz-base",
    label: "/admin/base-models/:id",
    token: () => ADMIN,
    fields: Object.keys(demoSpecConfig()),
    valid: () => demoSpecConfig(),
  },
  {
    method: "POST",
    path: () => "/admin/uploads/multipart",
    label: "/admin/uploads/multipart",
    token: () => f.key,
    fields: fieldsOf(admin.CreateMultipartRequestSchema),
    valid: () => ({ sha256: "ab".repeat(32) }),
  },
  {
    method: "POST",
    path: () => `/admin/uploads/${f.multipart.upload}/complete`,
    label: "/admin/uploads/:upload/complete",
    token: () => f.key,
    fields: fieldsOf(CompleteMultipartRequestSchema),
    valid: () => ({ uploadId: f.multipart.uploadId, parts: [f.multipart.part] }),
  },
  {
    method: "POST",
    path: () => "/admin/adapters/fz/versions",
    label: "/admin/adapters/:name/versions",
    token: () => f.key,
    fields: fieldsOf(admin.PublishVersionRequestSchema),
    valid: () => ({
      upload: f.uploads.pop() ?? crypto.randomUUID(),
      base: BASE,
      config: peftConfigJson({ r: 4 }),
    }),
  },
  {
    method: "PUT",
    path: () => "/admin/adapters/fz/aliases/canary",
    label: "/admin/adapters/:name/aliases/:alias",
    token: () => f.key,
    fields: fieldsOf(admin.MoveAliasRequestSchema),
    valid: () => ({ version: 2 }),
  },
  {
    method: "POST",
    path: () => "/admin/routes",
    label: "/admin/routes",
    token: () => f.key,
    fields: fieldsOf(experiments.CreateRouteRequestSchema),
    valid: () => ({ name: unique(), variants: [{ name: "a", target: "fz@1", weight: 10_000 }] }),
  },
  {
    method: "PUT",
    path: () => "/admin/routes/fz-route/weights",
    label: "/admin/routes/:route/weights",
    token: () => f.key,
    fields: fieldsOf(experiments.SetWeightsRequestSchema),
    valid: () => ({ weights: { a: 4000, b: 6000 } }),
  },
  {
    method: "POST",
    path: () => "/admin/routes/fz-route/status",
    label: "/admin/routes/:route/status",
    token: () => f.key,
    fields: fieldsOf(experiments.SetStatusRequestSchema),
    valid: () => ({ status: "paused" }),
  },
  {
    method: "POST",
    path: () => "/admin/routes/fz-route/promote",
    label: "/admin/routes/:route/promote",
    token: () => f.key,
    fields: fieldsOf(experiments.PromoteRequestSchema),
    valid: () => ({ variant: "b", alias: "prod" }),
  },
  {
    method: "POST",
    path: () => "/admin/routes/fz-route/assignments",
    label: "/admin/routes/:route/assignments",
    token: () => f.key,
    fields: fieldsOf(experiments.AssignRequestSchema),
    valid: () => ({ subjects: ["u1", "u2"] }),
  },
  {
    method: "POST",
    path: () => "/admin/compare",
    label: "/admin/compare",
    token: () => f.key,
    fields: fieldsOf(experiments.CompareRequestSchema),
    valid: () => ({ models: ["fz@1", "fz@2"], messages: hi, max_tokens: 4 }),
  },
  {
    method: "POST",
    path: () => "/admin/runners",
    label: "/admin/runners",
    token: () => f.fleetKey,
    fields: fieldsOf(fleet.JoinRequestSchema),
    valid: joinBody,
  },
  {
    method: "PUT",
    path: () => `/admin/runners/${f.memberId}/heartbeat`,
    label: "/admin/runners/:id/heartbeat",
    token: () => f.fleetKey,
    fields: fieldsOf(fleet.HeartbeatRequestSchema),
    valid: () => ({ draining: false, inFlight: 0, queueDepth: 0, resident: [] }),
  },
];

async function expectNo5xx(res: Response, what: string): Promise<void> {
  const text = await res.text();
  if (res.status >= 500) throw new Error(`${what}: answered ${res.status}: ${text.slice(0, 500)}`);
  if (res.status < 400) return;
  const body = JSON.parse(text) as { error?: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(typeof body.error?.message).toBe("string");
  expect(typeof body.error?.type).toBe("string");
  expect(typeof body.error?.code).toBe("string");
  expect(body.error?.param === null || typeof body.error?.param === "string").toBe(true);
}

beforeAll(async () => {
  const spec = await demoBase();
  const made = await newTenant(["admin", "infer", "publish"]);
  await publish(made.key, "fz", adapterFiles(spec, { r: 4, seed: 1 }), { alias: "prod" });
  await publish(made.key, "fz", adapterFiles(spec, { r: 4, seed: 2 }), { alias: "canary" });
  const route = await call("POST", "/admin/routes", {
    token: made.key,
    json: {
      name: "fz-route",
      variants: [
        { name: "a", target: "fz@1", weight: 5000 },
        { name: "b", target: "fz@2", weight: 5000 },
      ],
    },
  });
  await json(route, 201);
  const uploads: string[] = [];
  for (let seed = 3; seed < 13; seed++) {
    const bytes = adapterFiles(spec, { r: 4, seed }).safetensors;
    uploads.push((await json<{ upload: string }>(await upload(made.key, bytes), 201)).upload);
  }
  const mp = await json<{ upload: string; uploadId: string }>(
    await call("POST", "/admin/uploads/multipart", { token: made.key, json: { sha256: "ab".repeat(32) } }),
    201,
  );
  const part = await json<{ partNumber: number; etag: string }>(
    await call("PUT", `/admin/uploads/${mp.upload}/parts/1?uploadId=${encodeURIComponent(mp.uploadId)}`, {
      token: made.key,
      body: new Uint8Array(64),
    }),
    200,
  );
  const spare = await json<{ id: string }>(
    await call("POST", "/admin/keys", {
      token: made.key,
      json: { tenant: made.tenant, name: "spare", scopes: ["infer"] },
    }),
    201,
  );
  const fleetKey = await json<{ key: string }>(
    await call("POST", "/admin/keys", {
      token: ADMIN,
      json: { tenant: made.tenant, name: "fleet", scopes: ["runner"] },
    }),
    201,
  );
  const other = await newTenant();
  f = {
    key: made.key,
    tenant: made.tenant,
    uploads,
    multipart: { upload: mp.upload, uploadId: mp.uploadId, part },
    keyId: spare.id,
    fleetKey: fleetKey.key,
    memberId: "",
    otherTenant: other.tenant,
    fingerprint: spec.fingerprint,
  };
  f.memberId = (
    await json<{ id: string }>(
      await call("POST", "/admin/runners", { token: f.fleetKey, json: joinBody() }),
      201,
    )
  ).id;
});

beforeEach(() => {
  runner.calls = [];
  runner.handler = fakeRunner;
});

describe("every route's body, fuzzed", () => {
  for (const route of ROUTES) {
    it(
      `${route.method} ${route.label}: never 5xx, every 4xx an OpenAI error envelope`,
      async () => {
        expect(route.fields.length).toBeGreaterThan(0);
        await fc.assert(
          fc.asyncProperty(bodyFor(route), async ({ text }) => {
            const res = await call(route.method, route.path(), {
              token: route.token(),
              body: text,
              headers: { "content-type": "application/json" },
            });
            await expectNo5xx(res, `${route.method} ${route.path()} ${text.slice(0, 300)}`);
          }),
          { numRuns: RUNS_PER_ROUTE },
        );
      },
      ROUTE_TIMEOUT_MS,
    );
  }

  it(
    "POST /admin/uploads and PUT parts: random bytes and digests, never 5xx",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ maxLength: 64 }),
          fc.boolean(),
          fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.string({ maxLength: 70 })),
          async (bytes, honest, digest) => {
            const staged = await call("POST", "/admin/uploads", {
              token: f.key,
              body: bytes,
              headers: {
                "x-content-sha256": honest ? await sha256Hex(bytes) : digest,
                "content-type": "application/octet-stream",
              },
            });
            await expectNo5xx(staged, "POST /admin/uploads");
            const part = await call(
              "PUT",
              `/admin/uploads/${f.multipart.upload}/parts/${(bytes[0] ?? 0) % 3}?uploadId=${honest ? encodeURIComponent(f.multipart.uploadId) : digest}`,
              { token: f.key, body: bytes, headers: { "content-type": "application/octet-stream" } },
            );
            await expectNo5xx(part, "PUT /admin/uploads/:upload/parts/:part");
          },
        ),
        { numRuns: RUNS_PER_ROUTE },
      );
    },
    ROUTE_TIMEOUT_MS,
  );

  it(
    "POST /admin/adapters/:name/versions of damaged weights: the edge's safetensors reader never 5xx",
    async () => {
      const weights = adapterFiles(await demoBase(), { r: 4, seed: 20 }).safetensors;
      const headerEnd = 8 + Number(new DataView(weights.buffer, weights.byteOffset, 8).getBigUint64(0, true));
      const damaged = fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        // Bytes of the header (length field and JSON) replaced: bad lengths, bad UTF-8, bad JSON, bad entries.
        fc
          .array(fc.tuple(fc.nat(headerEnd - 1), fc.integer({ min: 0, max: 255 })), {
            minLength: 1,
            maxLength: 4,
          })
          .map((flips) => {
            const bytes = weights.slice();
            for (const [at, value] of flips) bytes[at] = value;
            return bytes;
          }),
        fc.nat(weights.byteLength - 1).map((cut) => weights.slice(0, cut)),
      );
      await fc.assert(
        fc.asyncProperty(damaged, async (bytes) => {
          const staged = await json<{ upload: string }>(await upload(f.key, bytes), 201);
          const res = await call("POST", "/admin/adapters/fz-damaged/versions", {
            token: f.key,
            json: { upload: staged.upload, base: BASE, config: peftConfigJson({ r: 4 }) },
          });
          await expectNo5xx(res, "POST /admin/adapters/:name/versions");
        }),
        { numRuns: RUNS_PER_ROUTE },
      );
    },
    ROUTE_TIMEOUT_MS,
  );
});
