// Every OpenAI or vLLM request field we do not implement is refused by name (400, `param` = the field) by the
// schemas the edge and the runner both validate with; neutral values and implemented fields parse. Requests
// go through validate() and the apps' error mapping, so what is checked is what a client receives.
import { Hono } from "hono";
import { beforeEach, describe, expect, it } from "vitest";
import {
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  type ErrorEnvelope,
  ErrorEnvelopeSchema,
} from "../../src/contracts/openai.ts";
import { REFUSED_FIELDS } from "../../src/contracts/openai-refusals.ts";
import { errorEnvelope } from "../../src/errors.ts";
import { toAppError } from "../../src/http/errors.ts";
import { validate } from "../../src/http/validate.ts";
import {
  CHAT_BASE,
  COMPLETION_BASE,
  type Endpoint,
  FIELD_CASES,
  paramOf,
  requestFor,
} from "../helpers/openai-field-cases.ts";

const SCHEMAS = { chat: ChatCompletionRequestSchema, completions: CompletionRequestSchema } as const;

/** How many requests got past validation into a handler. */
let handled = 0;
const app = new Hono();
app.onError((error, c) => {
  const appError = toAppError(error);
  return c.json(errorEnvelope(appError), appError.status as 400);
});
for (const endpoint of ["chat", "completions"] as const) {
  app.post(`/${endpoint}`, validate("json", SCHEMAS[endpoint]), (c) => {
    handled++;
    return c.json(c.req.valid("json"));
  });
}

async function send(endpoint: Endpoint, body: unknown): Promise<Response> {
  return await app.request(`/${endpoint}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The refusal a client gets; fails the test if the request was accepted or reached the handler. */
async function refusal(endpoint: Endpoint, body: unknown): Promise<ErrorEnvelope["error"]> {
  const before = handled;
  const res = await send(endpoint, body);
  const text = await res.text();
  expect(res.status, text).toBe(400);
  expect(handled, "the handler ran").toBe(before);
  return ErrorEnvelopeSchema.parse(JSON.parse(text)).error;
}

beforeEach(() => {
  handled = 0;
});

describe.each(["chat", "completions"] as const)("%s request schema", (endpoint) => {
  const cases = FIELD_CASES.filter((c) => c[endpoint] !== undefined);

  it.each(cases.flatMap((c) => (c[endpoint]?.refused ?? []).map((value) => ({ c, value }))))(
    "refuses $c.field = $value with 400 and param $c.field",
    async ({ c, value }) => {
      const error = await refusal(endpoint, requestFor(endpoint, c, value));
      expect(error).toMatchObject({
        type: "invalid_request_error",
        code: "invalid_request",
        param: paramOf(c),
      });
      // field, rule and value (docs/conventions.md#errors)
      expect(error.message).toMatch(new RegExp(`^body\\.${escapeRegExp(paramOf(c))}: .+; got `));
      expect(error.details).toHaveLength(1);
    },
  );

  it.each(cases.flatMap((c) => (c[endpoint]?.accepted ?? []).map((value) => ({ c, value }))))(
    "accepts $c.field = $value",
    async ({ c, value }) => {
      const res = await send(endpoint, requestFor(endpoint, c, value));
      expect(res.status, await res.clone().text()).toBe(200);
      expect(handled).toBe(1);
    },
  );

  it("lets unknown fields through: the schemas stay loose for SDK extras", async () => {
    const base = endpoint === "chat" ? CHAT_BASE : COMPLETION_BASE;
    const res = await send(endpoint, { ...base, metadata: { team: "a" }, x_client_tag: 7 });
    expect(await res.json()).toMatchObject({ metadata: { team: "a" }, x_client_tag: 7 });
  });
});

describe("refusals together", () => {
  it("reports every refused field of one request, the first as param", async () => {
    const error = await refusal("chat", {
      ...CHAT_BASE,
      tools: [{ type: "function", function: { name: "f" } }],
      response_format: { type: "json_object" },
      guided_json: { type: "object" },
    });
    expect(error.param).toBe("tools");
    expect(error.message).toMatch(/^body\.tools: tool calling is not supported; got .* \(and 2 more\)$/);
    expect(error.details).toEqual([
      'body.tools: tool calling is not supported; got [{"type":"function","function":{"name":"f"}}]',
      'body.response_format.type: only "text" is supported: structured output (json_object, json_schema) is not; got "json_object"',
      'body.guided_json: guided decoding (structured output) is not supported; got {"type":"object"}',
    ]);
  });

  it("names a refused content part by its index, after the text parts that pass", async () => {
    const error = await refusal("chat", {
      ...CHAT_BASE,
      messages: [
        { role: "system", content: "be brief" },
        {
          role: "user",
          content: [
            { type: "text", text: "what is this?" },
            { type: "image_url", image_url: { url: "https://example.test/cat.png" } },
          ],
        },
      ],
    });
    expect(error.param).toBe("messages[1].content[1].type");
    expect(error.message).toBe(
      'body.messages[1].content[1].type: only "text" content parts are supported (image, audio and file parts are not); got "image_url"',
    );
  });

  it("refuses a text part without text", async () => {
    const error = await refusal("chat", {
      ...CHAT_BASE,
      messages: [{ role: "user", content: [{ type: "text" }] }],
    });
    expect(error.param).toBe("messages[0].content[0].text");
  });

  it("names a non-object response_format itself", async () => {
    const error = await refusal("completions", { ...COMPLETION_BASE, response_format: "json" });
    expect(error.param).toBe("response_format");
  });
});

describe("the refusal list and the cases agree", () => {
  it("every field in REFUSED_FIELDS has a refused case on each of its endpoints", () => {
    for (const refused of REFUSED_FIELDS) {
      const c = FIELD_CASES.find((x) => x.field === refused.field);
      expect(c, `${refused.field} has no case in test/helpers/openai-field-cases.ts`).toBeDefined();
      expect(c?.status, refused.field).toBe("refused");
      for (const endpoint of refused.endpoints) {
        expect(c?.[endpoint]?.refused.length, `${refused.field} on ${endpoint}`).toBeGreaterThan(0);
      }
    }
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
