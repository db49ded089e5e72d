// The edge refuses every OpenAI or vLLM request field we do not implement with 400 and `param` naming the
// field, before it resolves the model or calls a runner: the request never leaves the edge.
import { beforeEach, describe, expect, it } from "vitest";
import {
  CHAT_BASE,
  COMPLETION_BASE,
  paramOf,
  refusedRequests,
  requestFor,
} from "../helpers/openai-field-cases.ts";
import { BASE, call, demoBase, type ErrorBody, json, newTenant, runner } from "./support/edge.ts";

const PATHS = { chat: "/v1/chat/completions", completions: "/v1/completions" } as const;

const answer = {
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: BASE,
  choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
};

let key: string;

beforeEach(async () => {
  runner.calls = [];
  runner.handler = () => Response.json(answer);
  await demoBase();
  key = (await newTenant(["infer"])).key;
});

describe("requests the edge forwards", () => {
  it.each([
    ["chat", CHAT_BASE],
    ["completions", COMPLETION_BASE],
  ] as const)(
    "a plain %s request reaches the runner (so a refusal's zero calls mean something)",
    async (endpoint, body) => {
      const res = await call("POST", PATHS[endpoint], { token: key, json: body });
      await json(res, 200);
      expect(runner.calls).toHaveLength(1);
    },
  );

  it("neutral values of refused fields are forwarded as sent", async () => {
    const body = { ...CHAT_BASE, tools: [], tool_choice: "none", response_format: { type: "text" }, n: 1 };
    await json(await call("POST", PATHS.chat, { token: key, json: body }), 200);
    expect(runner.calls).toHaveLength(1);
    expect(await runner.calls[0]?.clone().json()).toMatchObject({ tools: [], tool_choice: "none" });
  });
});

describe("refused fields", () => {
  it.each(refusedRequests().map((r) => ({ ...r, field: r.c.field })))(
    "$endpoint: $field = $value is 400 with its param, and no runner call",
    async ({ endpoint, c, value }) => {
      const res = await call("POST", PATHS[endpoint], { token: key, json: requestFor(endpoint, c, value) });
      const { error } = await json<ErrorBody>(res, 400);
      expect(error).toMatchObject({
        code: "invalid_request",
        type: "invalid_request_error",
        param: paramOf(c),
      });
      expect(error.message.startsWith(`body.${paramOf(c)}: `)).toBe(true);
      expect(runner.calls).toHaveLength(0);
    },
  );
});
