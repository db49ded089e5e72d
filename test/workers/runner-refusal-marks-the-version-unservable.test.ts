// A runner that refuses a version's weights (its own validation: shapes, rank, non-finite values) makes that
// version unservable: the edge records the runner's reason on the version, answers 422 with it, and never
// streams those weights again. A new version of the same adapter is served as usual.
import { beforeEach, describe, expect, it } from "vitest";
import type { VersionResponse } from "../../src/contracts/admin.ts";
import {
  adapterFiles,
  call,
  demoBase,
  type ErrorBody,
  json,
  newTenant,
  publish,
  runner,
} from "./support/edge.ts";

const chat = (model: string) => ({ model, messages: [{ role: "user", content: "hi" }] });
const puts = () => runner.calls.filter((r) => r.method === "PUT");
const loaded = new Set<string>();

/** A runner that refuses `refused` (by content id) and serves everything else once loaded. */
function runnerRefusing(refused: string, answer: () => Response): void {
  runner.handler = async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "PUT") {
      await req.arrayBuffer();
      if (path.endsWith(refused)) return answer();
      loaded.add(path.split("/").at(-1) as string);
      return Response.json({ loaded: true }, { status: 201 });
    }
    if (req.method !== "POST") return Response.json({ object: "list", data: [] });
    const { model } = (await req.json()) as { model: string };
    if (!loaded.has(model)) {
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
    return Response.json({ id: "c", object: "chat.completion", created: 1, model, choices: [] });
  };
}

const rankRefusal = () =>
  Response.json(
    {
      error: {
        message:
          'adapter "x": base_model.model.layers.0.self_attn.q_proj rank 128 must be <= 64\u0000 see http://10.0.0.7:8000/x',
        type: "invalid_request_error",
        param: null,
        code: "invalid_adapter",
        details: ["layers.0.q_proj rank 128 must be <= 64", "layers.1.q_proj rank 128 must be <= 64"],
      },
    },
    { status: 400 },
  );

beforeEach(() => {
  runner.calls = [];
  loaded.clear();
});

describe("a runner's refusal of a version", () => {
  it("is recorded on the version, answered 422 with the reason, and the weights are not streamed again", async () => {
    const spec = await demoBase();
    const { key } = await newTenant(["admin", "infer"]);
    const v1 = await publish(key, "refused", adapterFiles(spec, { seed: 61 }));
    runnerRefusing(v1.adapterId, rankRefusal);

    const first = await call("POST", "/v1/chat/completions", { token: key, json: chat("refused") });
    const body = await json<ErrorBody>(first, 422);
    expect(body.error.code).toBe("adapter_unservable");
    expect(body.error.param).toBe("model");
    expect(body.error.message).toContain("refused@1");
    expect(body.error.message).toContain("rank 128 must be <= 64");
    expect(body.error.message).not.toContain("10.0.0.7");
    expect(body.error.message).not.toContain("\u0000");
    expect(puts()).toHaveLength(1);

    for (let i = 0; i < 3; i++) {
      const again = await call("POST", "/v1/chat/completions", { token: key, json: chat("refused@1") });
      const text = (await json<ErrorBody>(again, 422)).error.message;
      expect(text).toContain("rank 128 must be <= 64");
    }
    expect(puts()).toHaveLength(1);

    const shown = await json<VersionResponse>(
      await call("GET", "/admin/adapters/refused/versions/1", { token: key }),
      200,
    );
    expect(shown.unservable?.reason).toContain("layers.1.q_proj rank 128 must be <= 64");
    expect(shown.unservable?.reason).toContain("[address]");
    expect(shown.unservable?.reason.length).toBeLessThanOrEqual(500);
    expect(Number.isNaN(Date.parse(shown.unservable?.at ?? ""))).toBe(false);

    // a corrected version is unaffected
    const v2 = await publish(key, "refused", adapterFiles(spec, { seed: 62 }));
    expect(v2.version).toBe(2);
    const served = await call("POST", "/v1/chat/completions", { token: key, json: chat("refused") });
    expect(served.status).toBe(200);
    const v2Shown = await json<VersionResponse>(
      await call("GET", "/admin/adapters/refused/versions/2", { token: key }),
      200,
    );
    expect(v2Shown.unservable).toBeNull();
  });

  it("is not recorded when the runner refuses for a reason of its own (a busy runner)", async () => {
    const spec = await demoBase();
    const { key } = await newTenant(["admin", "infer"]);
    const v1 = await publish(key, "busy", adapterFiles(spec, { seed: 63 }));
    runnerRefusing(v1.adapterId, () =>
      Response.json({ error: { code: "queue_full", message: "full" } }, { status: 429 }),
    );
    const res = await call("POST", "/v1/chat/completions", { token: key, json: chat("busy") });
    expect(res.status).not.toBe(422);
    await res.body?.cancel();
    const shown = await json<VersionResponse>(
      await call("GET", "/admin/adapters/busy/versions/1", { token: key }),
      200,
    );
    expect(shown.unservable).toBeNull();
  });
});
