// The runner, called directly (not through the edge), refuses every OpenAI or vLLM request field it does not
// implement with 400 and `param` naming the field, before any generation starts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHAT_BASE,
  COMPLETION_BASE,
  paramOf,
  refusedRequests,
  requestFor,
} from "../helpers/openai-field-cases.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

const PATHS = { chat: "/v1/chat/completions", completions: "/v1/completions" } as const;

let dirs: DemoDirs;
let t: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  t = await startTestRunner(dirs.model);
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

/** Generations the runner has started on the base model. */
const started = () => t.runner.deps.metrics.requests.get({ adapter_id: "base" });

describe("requests the runner serves", () => {
  it.each([
    ["chat", CHAT_BASE],
    ["completions", COMPLETION_BASE],
  ] as const)(
    "a plain %s request starts a generation (so a refusal's zero means something)",
    async (endpoint, body) => {
      const before = started();
      const res = await t.post(PATHS[endpoint], body);
      expect(res.status, await res.clone().text()).toBe(200);
      await res.text();
      expect(started()).toBe(before + 1);
    },
  );
});

describe("refused fields", () => {
  it.each(refusedRequests().map((r) => ({ ...r, field: r.c.field })))(
    "$endpoint: $field = $value is 400 with its param, and no generation",
    async ({ endpoint, c, value }) => {
      const before = started();
      const res = await t.post(PATHS[endpoint], requestFor(endpoint, c, value));
      expect(res.status).toBe(400);
      const error = await errorOf(res);
      expect(error).toMatchObject({
        code: "invalid_request",
        type: "invalid_request_error",
        param: paramOf(c),
      });
      expect(error.message.startsWith(`body.${paramOf(c)}: `)).toBe(true);
      expect(started()).toBe(before);
      expect(t.runner.deps.scheduler.queueDepth + t.runner.deps.scheduler.runningCount).toBe(0);
    },
  );
});
