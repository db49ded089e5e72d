import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { decodeAdapterConfigHeader } from "../../src/contracts/runner.ts";
import { sha256Hex } from "../../src/crypto.ts";
import {
  adapterFiles,
  BASE,
  blobBytes,
  call,
  demoBase,
  json,
  newTenant,
  publish,
  runner,
  sentBody,
} from "./support/edge.ts";

const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "hello" }],
  ...extra,
});

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

describe("publish → resolve → forward", () => {
  it("publishes a PEFT adapter, resolves name@alias to the immutable version and forwards it by adapter id", async () => {
    const spec = await demoBase();
    const { key } = await newTenant();
    const files = adapterFiles(spec, { targets: ["q_proj", "v_proj"], r: 4, alpha: 8 });
    const published = await publish(key, "support", files, { alias: "prod", description: "first" });

    expect(published.version).toBe(1);
    expect(published.weightsSha256).toBe(await sha256Hex(files.safetensors));
    expect(published.aliases).toEqual(["prod"]);
    expect(await blobBytes(published.weightsSha256)).toEqual(files.safetensors);

    const res = await call("POST", "/v1/chat/completions", {
      token: key,
      json: chat("support@prod"),
      headers: { "x-request-id": "req-123" },
    });
    expect(await json(res, 200)).toEqual(completion);
    expect(res.headers.get("x-adapter")).toBe("support@1");
    expect(res.headers.get("x-request-id")).toBe("req-123");

    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]?.url).toBe(`${env.RUNNER_URL}/v1/chat/completions`);
    expect(runner.calls[0]?.headers.get("authorization")).toBe("Bearer test-runner-token");
    const body = await sentBody<{ model: string; messages: unknown }>();
    expect(body.model).toBe(published.adapterId);
    expect(body.messages).toEqual([{ role: "user", content: "hello" }]);
  });

  it("resolves name, name@N, name@alias and the base model; yanked and unknown versions are refused", async () => {
    const spec = await demoBase();
    const { key } = await newTenant();
    const v1 = await publish(key, "faq", adapterFiles(spec, { seed: 1 }), { alias: "prod" });
    const v2 = await publish(key, "faq", adapterFiles(spec, { seed: 2 }));
    const models = async (model: string) => {
      runner.calls = [];
      const res = await call("POST", "/v1/completions", { token: key, json: { model, prompt: "hi" } });
      return { res, sent: res.ok ? (await sentBody()).model : null };
    };
    expect((await models("faq")).sent).toBe(v2.adapterId);
    expect((await models("faq@1")).sent).toBe(v1.adapterId);
    expect((await models("faq@prod")).sent).toBe(v1.adapterId);
    const base = await models(BASE);
    expect(base.sent).toBe(BASE);
    expect(base.res.headers.get("x-adapter")).toBeNull();

    const missing = await models("faq@7");
    expect(missing.res.status).toBe(404);
    expect(((await missing.res.json()) as { error: { message: string } }).error.message).toContain("faq@7");
    expect((await models("faq@staging")).res.status).toBe(404);
    expect((await models("nope")).res.status).toBe(404);

    await json(await call("POST", "/admin/adapters/faq/versions/2/yank", { token: key }), 200);
    expect((await models("faq")).sent).toBe(v1.adapterId);
    const yanked = await models("faq@2");
    expect(yanked.res.status).toBe(404);
    expect(await yanked.res.text()).toContain("yanked");
  });

  it("lists what the tenant may call in GET /v1/models", async () => {
    const spec = await demoBase();
    const { key } = await newTenant();
    await publish(key, "billing", adapterFiles(spec), { alias: "prod" });
    const list = await json<{ object: string; data: { id: string; parent?: string | null }[] }>(
      await call("GET", "/v1/models", { token: key }),
      200,
    );
    expect(list.object).toBe("list");
    const ids = list.data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining([BASE, "billing", "billing@prod"]));
    expect(list.data.find((m) => m.id === "billing")?.parent).toBe(BASE);
  });

  it("streams the runner's answer through without buffering it", async () => {
    const spec = await demoBase();
    const { key } = await newTenant();
    await publish(key, "stream", adapterFiles(spec));
    const encoder = new TextEncoder();
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    runner.handler = () => {
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode('data: {"first":true}\n\n'));
          await held;
          controller.enqueue(encoder.encode("data: [DONE]\n\n"));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    };
    const res = await call("POST", "/v1/chat/completions", {
      token: key,
      json: chat("stream", { stream: true }),
    });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(res.headers.get("x-adapter")).toBe("stream@1");
    if (res.body === null) throw new Error("the streamed response has no body");
    const reader = res.body.getReader();
    // The first event arrives while the runner still holds the rest: nothing waited for the whole body.
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('data: {"first":true}\n\n');
    release();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read())
      rest += new TextDecoder().decode(r.value);
    expect(rest).toBe("data: [DONE]\n\n");
  });

  it("loads the adapter into a runner that does not hold it, streaming the weights from R2, then retries", async () => {
    const spec = await demoBase();
    const { key } = await newTenant();
    const files = adapterFiles(spec, { r: 2 });
    const published = await publish(key, "cold", files);
    const loads: { id: string; sha: string; config: unknown; bytes: Uint8Array }[] = [];
    runner.handler = async (req) => {
      if (req.method === "PUT") {
        loads.push({
          id: new URL(req.url).pathname.split("/").pop() ?? "",
          sha: req.headers.get("x-weights-sha256") ?? "",
          config: decodeAdapterConfigHeader(req.headers.get("x-adapter-config") ?? ""),
          bytes: new Uint8Array(await req.arrayBuffer()),
        });
        return Response.json({ loaded: true }, { status: 201 });
      }
      if (loads.length === 0) {
        return Response.json(
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
      }
      return Response.json(completion);
    };
    const res = await call("POST", "/v1/chat/completions", { token: key, json: chat("cold") });
    expect(res.status).toBe(200);
    expect(runner.calls.map((r) => r.method)).toEqual(["POST", "PUT", "POST"]);
    expect(loads).toEqual([
      {
        id: published.adapterId,
        sha: published.weightsSha256,
        config: files.config,
        bytes: files.safetensors,
      },
    ]);
  });

  it("refuses a request with no key, a bad key, or a key without the infer scope", async () => {
    const { tenant } = await newTenant();
    const noKey = await call("POST", "/v1/chat/completions", { json: chat("x") });
    expect(noKey.status).toBe(401);
    expect(((await noKey.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    expect((await call("GET", "/v1/models", { token: "lek_wrong" })).status).toBe(401);
    const publishOnly = await json<{ key: string }>(
      await call("POST", "/admin/keys", {
        token: "test-admin-token",
        json: { tenant, name: "p", scopes: ["publish"] },
      }),
      201,
    );
    const res = await call("GET", "/v1/models", { token: publishOnly.key });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('needs scope \\"infer\\"');
  });

  it("renders body mistakes as the OpenAI envelope naming the field", async () => {
    const { key } = await newTenant();
    const res = await call("POST", "/v1/chat/completions", {
      token: key,
      json: { model: "x", messages: [] },
    });
    const body = await json<{ error: { code: string; param: string; message: string } }>(res, 400);
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.param).toBe("messages");
    expect(body.error.message).toContain("body.messages");
  });
});
