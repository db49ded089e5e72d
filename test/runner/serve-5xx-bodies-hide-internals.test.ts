// Runner-internal error text stays in the log: a fault (here a real one, the engine's sessions released under
// a running scheduler) answers 500 with a fixed message and the request id, in a JSON body and in a stream's
// error event, while the log line with that id holds the engine's own words. Caller mistakes keep the field,
// the rule and the value (docs/conventions.md#errors).
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  errorOf,
  makeDemoDirs,
  sseData,
  startTestRunner,
  type DemoDirs,
  type TestRunner,
} from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;
const logged: string[] = [];
beforeAll(async () => {
  dirs = await makeDemoDirs();
  t = await startTestRunner(dirs.model);
  // the engine's sessions are released: every step now fails inside onnxruntime
  await t.runner.deps.engine.dispose();
  vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
    logged.push(
      args.map((a) => (a instanceof Error ? `${a.message} ${String(a.cause ?? "")}` : String(a))).join(" "),
    );
  });
});
afterAll(async () => {
  vi.restoreAllMocks();
  // the engine is already disposed: only the scheduler is left to stop
  await t?.runner.deps.scheduler.close();
  await t?.runner.deps.prompts.close();
  await dirs?.cleanup();
});

const body = { model: "demo-llama", prompt: "hello", max_tokens: 2 };

describe("5xx bodies", () => {
  it("say only that the request failed, with its request id; the log has the engine's text", async () => {
    logged.length = 0;
    const res = await t.post("/v1/completions", body, { headers: { "x-request-id": "req-fault-1" } });
    expect(res.status).toBe(500);
    const error = await errorOf(res);
    expect(error).toEqual({
      message: "the runner failed to serve this request (request id req-fault-1); its log has the details",
      type: "server_error",
      param: null,
      code: "internal_error",
    });
    const line = logged.find((l) => l.includes("req-fault-1"));
    expect(line).toBeDefined();
    // the log line carries more than the public message: the engine's own error
    expect(line).not.toContain("the runner failed to serve this request");
    expect(line?.length).toBeGreaterThan(60);
  });

  it("in a stream, end with an error event of the same form", async () => {
    const res = await t.post(
      "/v1/completions",
      { ...body, stream: true },
      { headers: { "x-request-id": "req-fault-2" } },
    );
    expect(res.status).toBe(200);
    const events = sseData(await res.text());
    expect(events.at(-1)).toBe("[DONE]");
    const error = JSON.parse(events.at(-2) as string).error;
    expect(error.message).toBe(
      "the runner failed to serve this request (request id req-fault-2); its log has the details",
    );
    expect(error.code).toBe("internal_error");
    expect(logged.some((l) => l.includes("req-fault-2"))).toBe(true);
  });

  it("name a generated request id when the caller sent none, the one in the response header", async () => {
    const res = await t.post("/v1/completions", body);
    expect(res.status).toBe(500);
    const id = res.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await errorOf(res)).message).toContain(`(request id ${id})`);
  });
});

describe("4xx bodies", () => {
  it("keep the field, the rule and the value", async () => {
    const res = await t.post("/v1/completions", { ...body, max_tokens: "ten" });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toBe('body.max_tokens: must be a number; got "ten"');
  });
});
