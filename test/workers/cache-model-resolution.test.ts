// The per-isolate model caches (workers/edge/registry/model-cache.ts) as a client sees them: writes through
// this isolate (alias move, publish, yank, base registration) show on the next request; a change made
// elsewhere (a direct D1 write stands in for another isolate) shows within MODEL_CACHE_MS; misses are never
// kept; two tenants' adapters of one name never share an entry.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MODEL_CACHE_MS } from "../../workers/edge/registry/model-cache.ts";
import { demoSpecConfig } from "../helpers/peft-files.ts";
import {
  ADMIN,
  adapterFiles,
  call,
  demoBase,
  json,
  newTenant,
  publish,
  runner,
  sentBody,
} from "./support/edge.ts";

const completion = {
  id: "cmpl-1",
  object: "chat.completion",
  created: 1,
  model: "x",
  choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
};

beforeEach(() => {
  runner.calls = [];
  runner.handler = () => Response.json(completion);
});

afterEach(() => {
  vi.useRealTimers();
});

/** What the runner was asked for (an adapter id or a base id), or the error code the edge answered. */
async function served(key: string, model: string): Promise<string> {
  runner.calls = [];
  const res = await call("POST", "/v1/completions", { token: key, json: { model, prompt: "hi" } });
  if (!res.ok) return `HTTP ${res.status} ${((await res.json()) as { error: { code: string } }).error.code}`;
  await res.arrayBuffer();
  return (await sentBody()).model;
}

describe("model resolution cache", () => {
  it("serves the new version of an alias moved through this isolate on the very next request", async () => {
    const spec = await demoBase();
    const { key } = await newTenant();
    const v1 = await publish(key, "support", adapterFiles(spec, { seed: 1 }), { alias: "prod" });
    const v2 = await publish(key, "support", adapterFiles(spec, { seed: 2 }));
    expect(await served(key, "support@prod")).toBe(v1.adapterId);
    await json(
      await call("PUT", "/admin/adapters/support/aliases/prod", { token: key, json: { version: 2 } }),
      200,
    );
    expect(await served(key, "support@prod")).toBe(v2.adapterId);
  });

  it("sees an alias moved elsewhere within MODEL_CACHE_MS, not before", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const spec = await demoBase();
    const { tenant, key } = await newTenant();
    const v1 = await publish(key, "faq", adapterFiles(spec, { seed: 3 }), { alias: "prod" });
    const v2 = await publish(key, "faq", adapterFiles(spec, { seed: 4 }));
    expect(await served(key, "faq@prod")).toBe(v1.adapterId);
    await env.DB.prepare(
      `UPDATE aliases SET version = 2 WHERE alias = 'prod'
       AND adapter_id = (SELECT id FROM adapters WHERE tenant = ? AND name = 'faq')`,
    )
      .bind(tenant)
      .run();
    expect(await served(key, "faq@prod")).toBe(v1.adapterId);
    vi.setSystemTime(Date.now() + MODEL_CACHE_MS + 1);
    expect(await served(key, "faq@prod")).toBe(v2.adapterId);
  });

  it("finds a version published right after a request for it missed, by number and as latest", async () => {
    const spec = await demoBase();
    const { key } = await newTenant();
    const v1 = await publish(key, "later", adapterFiles(spec, { seed: 5 }));
    expect(await served(key, "later")).toBe(v1.adapterId);
    expect(await served(key, "later@2")).toBe("HTTP 404 model_not_found");
    expect(await served(key, "fresh")).toBe("HTTP 404 model_not_found");
    const v2 = await publish(key, "later", adapterFiles(spec, { seed: 6 }));
    const fresh = await publish(key, "fresh", adapterFiles(spec, { seed: 7 }));
    expect(await served(key, "later@2")).toBe(v2.adapterId);
    expect(await served(key, "later")).toBe(v2.adapterId);
    expect(await served(key, "fresh")).toBe(fresh.adapterId);
  });

  it("refuses a version yanked through this isolate on the next request, though it was cached", async () => {
    const spec = await demoBase();
    const { key } = await newTenant();
    const v1 = await publish(key, "old", adapterFiles(spec, { seed: 8 }));
    const v2 = await publish(key, "old", adapterFiles(spec, { seed: 9 }));
    expect(await served(key, "old@2")).toBe(v2.adapterId);
    expect(await served(key, "old")).toBe(v2.adapterId);
    await json(await call("POST", "/admin/adapters/old/versions/2/yank", { token: key }), 200);
    expect(await served(key, "old@2")).toBe("HTTP 404 model_not_found");
    expect(await served(key, "old")).toBe(v1.adapterId);
  });

  it("never lets two tenants' adapters of the same name share an entry", async () => {
    const spec = await demoBase();
    const a = await newTenant();
    const b = await newTenant();
    const ofA = await publish(a.key, "shared", adapterFiles(spec, { seed: 10 }), { alias: "prod" });
    const ofB = await publish(b.key, "shared", adapterFiles(spec, { seed: 11 }), { alias: "prod" });
    expect(ofA.adapterId).not.toBe(ofB.adapterId);
    for (let round = 0; round < 2; round++) {
      for (const model of ["shared", "shared@1", "shared@prod"]) {
        expect(await served(a.key, model)).toBe(ofA.adapterId);
        expect(await served(b.key, model)).toBe(ofB.adapterId);
      }
    }
    const c = await newTenant();
    expect(await served(c.key, "shared@prod")).toBe("HTTP 404 model_not_found");
  });

  it("serves a base model registered through this isolate right after a request for it missed", async () => {
    const { key } = await newTenant();
    const id = `base-${crypto.randomUUID().slice(0, 8)}`;
    expect(await served(key, id)).toBe("HTTP 404 model_not_found");
    await json(await call("PUT", `/admin/base-models/${id}`, { token: ADMIN, json: demoSpecConfig() }), 201);
    expect(await served(key, id)).toBe(id);
  });
});
