// The edge over a pool of three runners, inside workerd with real local D1 and R2. The runners are
// stand-ins behind the injected fetch, so each test can make one refuse, stall, or die mid-stream.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { TENANT_HEADER } from "../../src/contracts/runner.ts";
import { createApp } from "../../workers/edge/app.ts";
import { PoolState } from "../../workers/edge/pool/pool-state.ts";
import { createRunnerClient } from "../../workers/edge/pool/runner-client.ts";
import { adapterFiles, demoBase, newTenant, publish } from "./support/edge.ts";

const URLS = ["http://runner-a.test", "http://runner-b.test", "http://runner-c.test"];
const TOKENS = ["tok-a", "tok-b", "tok-c"];
type Handler = (req: Request) => Promise<Response> | Response;

let handlers: Map<string, Handler>;
let calls: { runner: string; method: string; path: string; auth: string | null; tenant?: string | null }[];
let state: PoolState;

const completion = (who: string) =>
  Response.json({ id: "c", object: "chat.completion", created: 1, model: "m", choices: [{ index: 0, who }] });
const notLoaded = () =>
  Response.json(
    {
      error: {
        message: "not loaded",
        type: "invalid_request_error",
        param: "model",
        code: "adapter_not_loaded",
      },
    },
    { status: 409 },
  );

const app = createApp({
  runner: () =>
    createRunnerClient({
      pool: {
        runners: URLS.map((url, i) => ({ url, token: TOKENS[i] as string, weight: 1 })),
        timeoutMs: 300,
      },
      state,
      fetch: async (input, init) => {
        const req = new Request(input, init);
        const { origin, pathname } = new URL(req.url);
        calls.push({
          runner: origin,
          method: req.method,
          path: pathname,
          auth: req.headers.get("authorization"),
          tenant: req.headers.get(TENANT_HEADER),
        });
        const handler = handlers.get(origin);
        if (handler === undefined) throw new TypeError("fetch failed: connection refused");
        // like a real fetch, give up when the caller's signal aborts (the edge's first-byte timeout)
        const aborted = new Promise<never>((_, reject) =>
          init?.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
        );
        return await Promise.race([handler(req), aborted]);
      },
    }),
});

async function ask(key: string, model: string, extra: Record<string, unknown> = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request("http://edge.test/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], ...extra }),
    }),
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

const posts = () => calls.filter((c) => c.method === "POST");

async function tenantWithAdapter(seed: number) {
  const spec = await demoBase();
  const { key } = await newTenant();
  const files = adapterFiles(spec, { seed });
  const published = await publish(key, "pool", files);
  return { key, published, files };
}

/** Every runner answers, naming itself; loads succeed. */
function allHealthy(): void {
  for (const url of URLS) {
    handlers.set(url, async (req) => {
      if (req.method === "PUT") {
        await req.arrayBuffer();
        return Response.json({ loaded: true }, { status: 201 });
      }
      return completion(url);
    });
  }
}

beforeEach(() => {
  handlers = new Map();
  calls = [];
  state = new PoolState();
  allHealthy();
});

describe("runner pool", () => {
  it("sends one adapter to one runner with that runner's own token", async () => {
    const { key } = await tenantWithAdapter(31);
    for (let i = 0; i < 5; i++) expect((await ask(key, "pool")).status).toBe(200);
    const used = new Set(posts().map((c) => c.runner));
    expect(used.size).toBe(1);
    const index = URLS.indexOf([...used][0] as string);
    expect(posts().every((c) => c.auth === `Bearer ${TOKENS[index]}`)).toBe(true);
  });

  it("sends an adapter to the runner holding it in host memory only, without loading it again", async () => {
    const { key, published } = await tenantWithAdapter(41);
    // where rendezvous hashing alone sends it
    await ask(key, "pool");
    const picked = posts()[0]?.runner;
    const holder = URLS.find((u) => u !== picked) as string;
    state = new PoolState();
    calls = [];
    const at = new Date().toISOString();
    const held = {
      adapterId: published.adapterId,
      name: null,
      slot: null,
      rank: 4,
      modules: 2,
      sizeBytes: 1,
      hostBytes: 1,
      pinned: false,
      loadedAt: at,
      lastUsedAt: at,
      inFlight: 0,
    };
    for (const url of URLS) {
      const holds = url === holder;
      handlers.set(url, async (req) => {
        if (req.method === "GET" && new URL(req.url).pathname === "/v1/adapters") {
          return Response.json({
            object: "list",
            maxSlots: 8,
            maxRank: 64,
            data: [],
            host: {
              maxAdapters: null,
              budgetBytes: 1024,
              usedBytes: holds ? 1 : 0,
              data: holds ? [held] : [],
            },
          });
        }
        if (req.method === "PUT") {
          await req.arrayBuffer();
          return Response.json({ loaded: true }, { status: 201 });
        }
        return completion(url);
      });
    }
    // another tenant's request lets the pool read every runner's listing in the background
    const other = await tenantWithAdapter(42);
    expect((await ask(other.key, "pool")).status).toBe(200);
    expect(calls.some((c) => c.method === "GET" && c.path === "/v1/adapters")).toBe(true);
    calls = [];
    for (let i = 0; i < 3; i++) expect((await ask(key, "pool")).status).toBe(200);
    expect(posts().map((c) => c.runner)).toEqual([holder, holder, holder]);
    expect(calls.filter((c) => c.method === "PUT")).toEqual([]);
  });

  it("names the tenant to the runner on every inference call, so runners schedule tenants fairly", async () => {
    const spec = await demoBase();
    const { tenant, key } = await newTenant();
    await publish(key, "pool", adapterFiles(spec, { seed: 43 }));
    expect((await ask(key, "pool")).status).toBe(200);
    expect((await ask(key, spec.id)).status).toBe(200);
    expect(posts().length).toBeGreaterThanOrEqual(2);
    expect(posts().every((c) => c.tenant === tenant)).toBe(true);
  });

  it("fails over before the first byte on a refused connection, a 5xx and a timeout, in turn", async () => {
    const { key } = await tenantWithAdapter(32);
    expect((await ask(key, "pool")).status).toBe(200);
    const [first] = posts().map((c) => c.runner);
    const failures: Handler[] = [
      () => new Response("boom", { status: 502 }),
      () => new Promise<Response>(() => {}),
      () => {
        throw new TypeError("connection reset");
      },
    ];
    for (const failure of failures) {
      state = new PoolState();
      calls = [];
      // only inference fails: the pool's background residency listing still gets its answer
      const healthy = handlers.get(first as string) as Handler;
      handlers.set(first as string, (req) => (req.method === "POST" ? failure(req) : healthy(req)));
      const res = await ask(key, "pool");
      expect(res.status).toBe(200);
      const body = (await res.json()) as { choices: { who: string }[] };
      expect(body.choices[0]?.who).not.toBe(first);
      expect(posts().map((c) => c.runner)[0]).toBe(first);
      expect(posts()).toHaveLength(2);
    }
    // the runner that failed is now tried last, so the next request does not wait for it
    calls = [];
    expect((await ask(key, "pool")).status).toBe(200);
    expect(posts()[0]?.runner).not.toBe(first);
  });

  it("passes a 4xx answer through without trying another runner", async () => {
    const { key } = await tenantWithAdapter(33);
    for (const url of URLS)
      handlers.set(url, () => Response.json({ error: { code: "invalid_request" } }, { status: 400 }));
    const res = await ask(key, "pool");
    expect(res.status).toBe(400);
    expect(posts()).toHaveLength(1);
  });

  it("loads a cold adapter once for 10 concurrent requests, streaming it from R2, and marks them cold", async () => {
    const { key, published, files } = await tenantWithAdapter(34);
    const loaded = new Set<string>();
    let puts = 0;
    for (const url of URLS) {
      handlers.set(url, async (req) => {
        if (req.method === "PUT") {
          puts++;
          expect(new URL(req.url).pathname).toBe(`/v1/adapters/${published.adapterId}`);
          expect(new Uint8Array(await req.arrayBuffer())).toEqual(files.safetensors);
          await new Promise((r) => setTimeout(r, 30));
          loaded.add(url);
          return Response.json({ loaded: true }, { status: 201 });
        }
        return loaded.has(url) ? completion(url) : notLoaded();
      });
    }
    const answers = await Promise.all(Array.from({ length: 10 }, () => ask(key, "pool")));
    expect(answers.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(puts).toBe(1);
    expect(answers.filter((r) => r.headers.get("x-adapter-cold") === "1").length).toBeGreaterThan(0);
    const timing =
      answers.find((r) => r.headers.get("x-adapter-cold") === "1")?.headers.get("server-timing") ?? "";
    expect(timing).toMatch(/resolve;dur=[\d.]+.*load;dur=[\d.]+.*ttft;dur=[\d.]+/);
    const warm = await ask(key, "pool");
    expect(warm.headers.get("x-adapter-cold")).toBeNull();
  });

  it("ends a stream whose runner dies with one clean error event, dropping the torn event", async () => {
    const { key } = await tenantWithAdapter(35);
    const encoder = new TextEncoder();
    for (const url of URLS) {
      handlers.set(url, () => {
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(encoder.encode('data: {"n":1}\n\ndata: {"n":'));
            setTimeout(() => controller.error(new Error(`socket to ${url} closed`)), 5);
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      });
    }
    const res = await ask(key, "pool", { stream: true });
    expect(res.status).toBe(200);
    const text = await res.text();
    const events = text.split("\n\n").filter((e) => e !== "");
    expect(events[0]).toBe('data: {"n":1}');
    expect(JSON.parse((events[1] as string).slice(6))).toMatchObject({ error: { code: "upstream_error" } });
    expect(events[2]).toBe("data: [DONE]");
    expect(events).toHaveLength(3);
    expect(text).not.toContain("runner-");
  });

  it("answers 503 naming runners by position only when none can serve", async () => {
    const { key } = await tenantWithAdapter(36);
    handlers.clear();
    const res = await ask(key, "pool");
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ error: { code: "unavailable", type: "server_error" } });
    expect(text).toContain("runner 1");
    for (const secret of [...URLS, ...TOKENS, "runner-a"]) expect(text).not.toContain(secret);
  });

  it("routes around a runner that refuses this edge's token, and says so when all do", async () => {
    const { key } = await tenantWithAdapter(38);
    expect((await ask(key, "pool")).status).toBe(200);
    const [first] = posts().map((c) => c.runner);
    handlers.set(first as string, () => new Response("bad token", { status: 401 }));
    calls = [];
    state = new PoolState();
    expect((await ask(key, "pool")).status).toBe(200);
    expect(posts()).toHaveLength(2);
    for (const url of URLS) handlers.set(url, () => new Response("bad token", { status: 401 }));
    const res = await ask(key, "pool");
    expect(res.status).toBe(502);
    expect(await res.text()).toContain("check RUNNER_TOKEN");
  });

  it("answers 503 with retry-after in the OpenAI envelope when every runner's queue is full", async () => {
    const { key } = await tenantWithAdapter(37);
    for (const url of URLS) {
      handlers.set(url, () =>
        Response.json(
          { error: { code: "queue_full", message: "full" } },
          { status: 429, headers: { "retry-after": url === URLS[1] ? "3" : "7" } },
        ),
      );
    }
    const res = await ask(key, "pool");
    expect(res.status).toBe(503);
    // the soonest any runner expects room
    expect(res.headers.get("retry-after")).toBe("3");
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ error: { code: "unavailable", type: "server_error" } });
    for (const secret of [...URLS, ...TOKENS]) expect(text).not.toContain(secret);
    expect(posts()).toHaveLength(3);
  });

  it("spills a saturated runner's request to the next rendezvous choice, the same one every time", async () => {
    const { key } = await tenantWithAdapter(39);
    expect((await ask(key, "pool")).status).toBe(200);
    const [first] = posts().map((c) => c.runner);
    const saturated: Handler[] = [
      () =>
        Response.json({ error: { code: "queue_full" } }, { status: 429, headers: { "retry-after": "1" } }),
      () =>
        Response.json({ error: { code: "unavailable" } }, { status: 503, headers: { "retry-after": "2" } }),
    ];
    const spilledTo = new Set<string>();
    for (const full of saturated) {
      for (let i = 0; i < 2; i++) {
        state = new PoolState();
        calls = [];
        const healthy = handlers.get(first as string) as Handler;
        handlers.set(first as string, (req) => (req.method === "POST" ? full(req) : healthy(req)));
        const res = await ask(key, "pool");
        expect(res.status).toBe(200);
        const who = ((await res.json()) as { choices: { who: string }[] }).choices[0]?.who as string;
        expect(who).not.toBe(first);
        expect(posts().map((c) => c.runner)).toEqual([first, who]);
        spilledTo.add(who);
        handlers.set(first as string, healthy);
      }
    }
    expect(spilledTo.size).toBe(1);
  });

  it("sends nothing to another runner once the client has gone", async () => {
    const { key } = await tenantWithAdapter(40);
    expect((await ask(key, "pool")).status).toBe(200);
    const [first] = posts().map((c) => c.runner);
    state = new PoolState();
    calls = [];
    const client = new AbortController();
    // the first choice lacks the adapter and its load fails just as the client leaves
    handlers.set(first as string, async (req) => {
      if (req.method === "PUT") {
        await req.arrayBuffer();
        client.abort();
        return new Response("disk full", { status: 500 });
      }
      return req.method === "POST" ? notLoaded() : Response.json({ object: "list", data: [] });
    });
    const ctx = createExecutionContext();
    const res = await app.fetch(
      new Request("http://edge.test/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "pool", messages: [{ role: "user", content: "hi" }] }),
        signal: client.signal,
      }),
      env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(400);
    expect(posts().map((c) => c.runner)).toEqual([first]);
  });
});
