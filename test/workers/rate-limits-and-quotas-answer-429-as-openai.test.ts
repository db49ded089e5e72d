// Rate limits per key and per tenant, and the monthly token budget: enforced at the edge before a runner is
// touched, answered as OpenAI answers (429 rate_limit_exceeded with retry-after, 429 insufficient_quota),
// with the x-ratelimit-* trios on every answer; the official openai client waits and retries.
import { env } from "cloudflare:workers";
import { createExecutionContext, runDurableObjectAlarm, waitOnExecutionContext } from "cloudflare:test";
import OpenAI from "openai";
import { beforeEach, describe, expect, it } from "vitest";
import { createApp } from "../../workers/edge/app.ts";
import { createRunnerClient } from "../../workers/edge/pool/runner-client.ts";
import { ADMIN, BASE, call, callOpen, demoBase, type ErrorBody, json, runner } from "./support/edge.ts";
import { chat } from "./support/experiment.ts";
import { scriptedRunner, usage } from "./support/usage.ts";

let counter = 0;

async function tenantWith(body: Record<string, unknown> = {}) {
  const tenant = `lim${Date.now().toString(36)}-${counter++}`;
  await json(await call("POST", "/admin/tenants", { token: ADMIN, json: { name: tenant, ...body } }), 201);
  return tenant;
}

async function keyFor(tenant: string, limits?: Record<string, unknown>, scopes = ["admin", "infer"]) {
  const created = await json<{ id: string; key: string; limits: unknown }>(
    await call("POST", "/admin/keys", {
      token: ADMIN,
      json: { tenant, name: "k", scopes, ...(limits ? { limits } : {}) },
    }),
    201,
  );
  return created;
}

async function infer(key: string, model = BASE) {
  const { res, settled } = await callOpen("POST", "/v1/chat/completions", { token: key, json: chat(model) });
  const text = await res.text();
  await settled();
  return {
    res,
    text,
    headers: Object.fromEntries(
      [...res.headers].filter(
        ([k]) => k.startsWith("x-ratelimit") || k.startsWith("retry-after") || k === "x-should-retry",
      ),
    ),
  };
}

beforeEach(async () => {
  await demoBase();
  scriptedRunner({ promptTokens: 6, pieces: ["a", "b", "c", "d"] });
});

describe("requests per minute", () => {
  it("admits up to the key's limit with OpenAI's headers, then answers 429 without touching a runner", async () => {
    const tenant = await tenantWith();
    const { key, limits } = await keyFor(tenant, { requestsPerMinute: 2 });
    expect(limits).toEqual({ requestsPerMinute: 2, tokensPerMinute: null });
    const first = await infer(key);
    expect(first.res.status).toBe(200);
    expect(first.headers).toMatchObject({
      "x-ratelimit-limit-requests": "2",
      "x-ratelimit-remaining-requests": "1",
    });
    expect(first.headers["x-ratelimit-reset-requests"]).toMatch(/^\d+(\.\d+)?(ms|s)$/);
    expect(first.headers["x-ratelimit-limit-tokens"]).toBeUndefined();
    expect((await infer(key)).headers["x-ratelimit-remaining-requests"]).toBe("0");
    const calls = runner.calls.length;

    const refused = await infer(key);
    expect(refused.res.status).toBe(429);
    expect(runner.calls.length).toBe(calls);
    const body = JSON.parse(refused.text) as ErrorBody;
    expect(body.error).toMatchObject({ code: "rate_limit_exceeded", type: "rate_limit_error", param: null });
    expect(body.error.message).toContain("requests per minute");
    expect(body.error.message).toContain("limit 2");
    expect(refused.headers["x-ratelimit-remaining-requests"]).toBe("0");
    const retryAfter = Number(refused.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(30);
    expect(Number(refused.headers["retry-after-ms"])).toBeGreaterThan(0);

    // Another tenant's key is served meanwhile, and so is another key of this tenant without a limit.
    const other = await keyFor(await tenantWith());
    expect((await infer(other.key)).res.status).toBe(200);
    const sibling = await keyFor(tenant);
    const served = await infer(sibling.key);
    expect(served.res.status).toBe(200);
    expect(served.headers["x-ratelimit-limit-requests"]).toBeUndefined();

    const lines = (await usage(key, "group_by=key")).data;
    expect(lines.find((l) => l.key?.prefix === key.slice(0, 12))).toMatchObject({
      requests: 3,
      errors: 1,
      totalTokens: 20,
    });
  });

  it("holds all of a tenant's keys to the tenant's limit, and reports the tighter of key and tenant", async () => {
    const tenant = await tenantWith({ limits: { requestsPerMinute: 3 } });
    const a = await keyFor(tenant, { requestsPerMinute: 10 });
    const b = await keyFor(tenant);
    expect((await infer(a.key)).headers).toMatchObject({
      "x-ratelimit-limit-requests": "3",
      "x-ratelimit-remaining-requests": "2",
    });
    expect((await infer(b.key)).headers["x-ratelimit-remaining-requests"]).toBe("1");
    expect((await infer(a.key)).res.status).toBe(200);
    const refused = await infer(b.key);
    expect(refused.res.status).toBe(429);
    expect(JSON.parse(refused.text).error.message).toContain("the tenant");
  });

  it("changes a key's limits through PATCH /admin/keys/{id}: raised, then removed", async () => {
    const tenant = await tenantWith();
    const created = await keyFor(tenant, { requestsPerMinute: 1 });
    expect((await infer(created.key)).res.status).toBe(200);
    expect((await infer(created.key)).res.status).toBe(429);
    const patched = await json<{ limits: unknown }>(
      await call("PATCH", `/admin/keys/${created.id}?tenant=${tenant}`, {
        token: ADMIN,
        json: { limits: { requestsPerMinute: 5 } },
      }),
      200,
    );
    expect(patched.limits).toEqual({ requestsPerMinute: 5, tokensPerMinute: null });
    const after = await infer(created.key);
    expect(after.res.status).toBe(200);
    expect(after.headers["x-ratelimit-limit-requests"]).toBe("5");
    // The key's own admin may change it too; null removes the limit, and with it the headers.
    await json(
      await call("PATCH", `/admin/keys/${created.id}`, {
        token: created.key,
        json: { limits: { requestsPerMinute: null } },
      }),
      200,
    );
    const free = await infer(created.key);
    expect(free.res.status).toBe(200);
    expect(free.headers["x-ratelimit-limit-requests"]).toBeUndefined();
  });
});

describe("tokens per minute", () => {
  it("charges the tokens the runner reported and refuses once they are spent, with the tokens trio", async () => {
    const tenant = await tenantWith();
    const { key } = await keyFor(tenant, { tokensPerMinute: 15 });
    const first = await infer(key);
    expect(first.headers).toMatchObject({
      "x-ratelimit-limit-tokens": "15",
      "x-ratelimit-remaining-tokens": "15",
    });
    // 10 tokens were used: 5 (and a little refill) remain.
    const second = await infer(key);
    expect(second.res.status).toBe(200);
    expect(Number(second.headers["x-ratelimit-remaining-tokens"])).toBeGreaterThanOrEqual(5);
    expect(Number(second.headers["x-ratelimit-remaining-tokens"])).toBeLessThan(7);
    // 20 used of 15: the bucket is in debt, and nothing is admitted until it has refilled.
    const refused = await infer(key);
    expect(refused.res.status).toBe(429);
    expect(JSON.parse(refused.text).error.message).toContain("tokens per minute");
    expect(refused.headers["x-ratelimit-remaining-tokens"]).toBe("0");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(1);
  });
});

describe("monthly token budget", () => {
  it("answers 429 insufficient_quota past the tenant's budget, until the operator raises it", async () => {
    const tenant = await tenantWith({ monthlyTokenBudget: 15 });
    const { key } = await keyFor(tenant);
    expect((await infer(key)).res.status).toBe(200);
    expect((await infer(key)).res.status).toBe(200);
    const refused = await infer(key);
    expect(refused.res.status).toBe(429);
    expect(JSON.parse(refused.text).error).toMatchObject({
      code: "insufficient_quota",
      type: "insufficient_quota",
    });
    expect(JSON.parse(refused.text).error.message).toContain("budget is 15 and 20 tokens were used");
    expect(refused.headers["x-should-retry"]).toBe("false");
    expect(refused.headers["retry-after"]).toBeUndefined();

    // A tenant's admin may read its budget but not change it.
    const own = await json<{ monthlyTokenBudget: number }>(
      await call("GET", `/admin/tenants/${tenant}`, { token: key }),
      200,
    );
    expect(own.monthlyTokenBudget).toBe(15);
    expect(
      (await call("PATCH", `/admin/tenants/${tenant}`, { token: key, json: { monthlyTokenBudget: 100 } }))
        .status,
    ).toBe(403);
    const raised = await json<{ monthlyTokenBudget: number }>(
      await call("PATCH", `/admin/tenants/${tenant}`, { token: ADMIN, json: { monthlyTokenBudget: 100 } }),
      200,
    );
    expect(raised.monthlyTokenBudget).toBe(100);
    expect((await infer(key)).res.status).toBe(200);
    await json(
      await call("PATCH", `/admin/tenants/${tenant}`, { token: ADMIN, json: { monthlyTokenBudget: null } }),
      200,
    );
    expect(
      (await call("GET", `/admin/tenants/${tenant}`, { token: ADMIN }).then((r) => r.json())) as unknown,
    ).toMatchObject({
      monthlyTokenBudget: null,
    });
  });
});

describe("settings are validated by name", () => {
  it("refuses limits that are not positive integers, and unknown fields", async () => {
    const tenant = await tenantWith();
    const refuse = async (path: string, method: string, body: unknown) =>
      (await json<ErrorBody>(await call(method, path, { token: ADMIN, json: body }), 400)).error;
    const zero = await refuse("/admin/keys", "POST", {
      tenant,
      name: "k",
      scopes: ["infer"],
      limits: { requestsPerMinute: 0 },
    });
    expect(zero.message).toContain("limits.requestsPerMinute");
    expect(zero.message).toContain(">= 1");
    expect(
      (await refuse("/admin/keys", "POST", { tenant, name: "k", scopes: ["infer"], limits: { rpm: 5 } }))
        .message,
    ).toContain("rpm");
    expect(
      (await refuse(`/admin/tenants/${tenant}`, "PATCH", { monthlyTokenBudget: 1.5 })).message,
    ).toContain("monthlyTokenBudget");
    expect(
      (await refuse("/admin/tenants", "POST", { name: "x-y", limits: { tokensPerMinute: -1 } })).message,
    ).toContain("tokensPerMinute");
    // Nothing was created or changed by the refusals.
    expect(
      (
        await json<{ data: unknown[] }>(
          await call("GET", `/admin/keys?tenant=${tenant}`, { token: ADMIN }),
          200,
        )
      ).data,
    ).toEqual([]);
    expect((await call("GET", "/admin/tenants/x-y", { token: ADMIN })).status).toBe(404);
  });
});

describe("the meter's writes", () => {
  it("reach D1 on the meter's alarm, and writing again changes nothing", async () => {
    const tenant = await tenantWith();
    const { key } = await keyFor(tenant);
    await infer(key);
    const rows = async () =>
      (
        await env.DB.prepare(
          "SELECT requests, prompt_tokens, completion_tokens FROM usage_hourly WHERE tenant = ?",
        )
          .bind(tenant)
          .all()
      ).results;
    expect(await rows()).toEqual([]);
    const meter = env.TENANT_METER.getByName(tenant);
    expect(await runDurableObjectAlarm(meter)).toBe(true);
    expect(await rows()).toEqual([{ requests: 1, prompt_tokens: 6, completion_tokens: 4 }]);
    await meter.flush();
    await infer(key);
    await meter.flush();
    await meter.flush();
    expect(await rows()).toEqual([{ requests: 2, prompt_tokens: 12, completion_tokens: 8 }]);
  });
});

describe("the official openai client", () => {
  it("waits for retry-after on 429 and then succeeds", async () => {
    const tenant = await tenantWith();
    // One request every two seconds once the burst is spent: the refusal's retry-after is up to 2 s.
    const { key } = await keyFor(tenant, { requestsPerMinute: 30 });
    const app = createApp({
      runner: (e) =>
        createRunnerClient({
          baseUrl: e.RUNNER_URL,
          token: e.RUNNER_TOKEN,
          fetch: async (input, init) => await runner.handler(new Request(input, init)),
        }),
    });
    const attempts: number[] = [];
    const client = new OpenAI({
      apiKey: key,
      baseURL: "http://edge.test/v1",
      maxRetries: 2,
      fetch: async (input: string | URL | Request, init?: RequestInit) => {
        const ctx = createExecutionContext();
        const res = await app.fetch(new Request(input, init), env, ctx);
        const body = await res.arrayBuffer();
        await waitOnExecutionContext(ctx);
        attempts.push(res.status);
        return new Response(body, res);
      },
    });
    // Spend the burst at once, so the client's first attempt finds the bucket empty.
    const spent = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const res = await call("POST", "/v1/chat/completions", { token: key, json: chat(BASE) });
        await res.text();
        return res.status;
      }),
    );
    expect(spent.filter((s) => s === 429).length).toBeGreaterThanOrEqual(10);
    const answer = await client.chat.completions.create({
      model: BASE,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(answer.choices[0]?.message.content).toBe("abcd");
    expect(attempts[0]).toBe(429);
    expect(attempts.at(-1)).toBe(200);
  });
});
