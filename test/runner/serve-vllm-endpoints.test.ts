// The runner answers vLLM's endpoints with vLLM's shapes and statuses: /tokenize and /detokenize against the
// real tokenizer, /version, model cards in /v1/models and /v1/models/{id}, 404 model_not_found for a name it
// does not serve, and vLLM's load_lora_adapter rules (same content under a second name is an alias of one
// slot; a name held by other content is refused with 400).
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { AdapterLoadResponseSchema, ResidentAdapterListSchema } from "../../src/contracts/runner.ts";
import {
  DetokenizeResponseSchema,
  RunnerModelListSchema,
  RunnerModelObjectSchema,
  TokenizeResponseSchema,
  VersionResponseSchema,
} from "../../src/contracts/runner-vllm.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let t: TestRunner;
const paths: Record<string, string> = {};

beforeAll(async () => {
  dirs = await makeDemoDirs();
  paths.support = await dirs.adapter("support", { seed: 5 });
  paths.sql = await dirs.adapter("sql", { seed: 6 });
  // the same files in another directory: the same content id
  paths.sqlCopy = join(dirs.root, "adapters", "sql-copy");
  await cp(paths.sql, paths.sqlCopy, { recursive: true });
  t = await startTestRunner(dirs.model, { loras: [{ name: "support", path: paths.support }], maxLoras: 3 });
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

const tokenizer = () => t.runner.deps.tokenizer;
const maxModelLen = () => t.runner.deps.engine.info.maxPositions;

async function tokenize(body: unknown) {
  const res = await t.post("/tokenize", body);
  expect(res.status).toBe(200);
  return TokenizeResponseSchema.parse(await res.json());
}

async function detokenize(tokens: number[]) {
  const res = await t.post("/detokenize", { tokens });
  expect(res.status).toBe(200);
  return DetokenizeResponseSchema.parse(await res.json()).prompt;
}

async function complete(model: string) {
  const res = await t.post("/v1/completions", { model, prompt: "Hi", max_tokens: 6, temperature: 0 });
  return res;
}

async function completionText(model: string): Promise<string> {
  const res = await complete(model);
  expect(res.status, model).toBe(200);
  return CompletionSchema.parse(await res.json()).choices[0]?.text as string;
}

async function residentAdapters() {
  return ResidentAdapterListSchema.parse(await (await t.app.request("/v1/adapters")).json()).data;
}

describe("POST /tokenize and /detokenize", () => {
  it("tokenizes a prompt as the tokenizer does, with its special tokens unless told not to", async () => {
    const text = "Hello world, tokenized.";
    const withSpecial = await tokenize({ prompt: text });
    expect(withSpecial.tokens).toEqual(tokenizer().encode(text));
    expect(withSpecial.count).toBe(withSpecial.tokens.length);
    expect(withSpecial.max_model_len).toBe(maxModelLen());
    const plain = await tokenize({ model: "demo-llama", prompt: text, add_special_tokens: false });
    expect(plain.tokens).toEqual(tokenizer().encode(text, { addSpecialTokens: false }));
    // the demo tokenizer adds a BOS: the two differ by exactly that leading token
    expect(withSpecial.tokens.slice(1)).toEqual(plain.tokens);
    expect(withSpecial.count).toBe(plain.count + 1);
  });

  it("round-trips text through /tokenize and /detokenize, keeping special tokens as vLLM does", async () => {
    for (const text of ["Hello world", "The river runs; then it stops.", "  spaced\nlines  "]) {
      const { tokens } = await tokenize({ prompt: text, add_special_tokens: false });
      expect(await detokenize(tokens)).toBe(text);
      const special = (await tokenize({ prompt: text })).tokens;
      const decoded = await detokenize(special);
      expect(decoded).toBe(tokenizer().decode(special));
      expect(decoded.endsWith(text)).toBe(true);
      expect(decoded.length).toBeGreaterThan(text.length);
    }
    expect(await detokenize([])).toBe("");
  });

  it("tokenizes messages through the chat template, counting what a chat request prefills", async () => {
    const messages = [
      { role: "system", content: "Be brief." },
      {
        role: "user",
        content: [
          { type: "text", text: "Hi " },
          { type: "text", text: "there" },
        ],
      },
    ];
    const flat = [
      { role: "system" as const, content: "Be brief." },
      { role: "user" as const, content: "Hi there" },
    ];
    const chat = await tokenize({ model: "support", messages });
    expect(chat.tokens).toEqual(tokenizer().encodeChat(flat, { addGenerationPrompt: true }));
    const res = await t.post("/v1/chat/completions", { model: "support", messages, max_tokens: 1 });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens).toBe(chat.count);
    const noPrompt = await tokenize({ messages, add_generation_prompt: false });
    expect(noPrompt.tokens).toEqual(tokenizer().encodeChat(flat, { addGenerationPrompt: false }));
    expect(noPrompt.count).toBeLessThan(chat.count);
    expect(chat.tokens.slice(0, noPrompt.count)).toEqual(noPrompt.tokens);
  });

  it("refuses unknown and unsupported fields by name, and a model it does not serve with 404", async () => {
    const cases: [unknown, string, RegExp][] = [
      [{ prompt: "x", temprature: 1 }, "temprature", /not a field of \/tokenize/],
      [{ prompt: "x", return_token_strs: true }, "return_token_strs", /not supported/],
      [
        { messages: [{ role: "user", content: "x" }], chat_template: "{{x}}" },
        "chat_template",
        /not supported/,
      ],
      [{ prompt: "x", messages: [{ role: "user", content: "x" }] }, "messages", /not be sent with prompt/],
      [{}, "prompt", /is required/],
      [{ prompt: "x", add_generation_prompt: true }, "add_generation_prompt", /messages only/],
      [{ prompt: 7 }, "prompt", /string/],
    ];
    for (const [body, param, message] of cases) {
      const res = await t.post("/tokenize", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const error = await errorOf(res);
      expect(error).toMatchObject({ code: "invalid_request", param });
      expect(error.message).toMatch(message);
    }
    // vLLM's defaults pass
    expect((await t.post("/tokenize", { prompt: "x", return_token_strs: false, tools: null })).status).toBe(
      200,
    );
    const unknown = await t.post("/tokenize", { model: "nope", prompt: "x" });
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toMatchObject({ code: "model_not_found", param: "model" });
    const badId = await t.post("/detokenize", { tokens: [1, 9999] });
    expect(badId.status).toBe(400);
    expect(await errorOf(badId)).toMatchObject({ param: "tokens", message: expect.stringMatching(/9999/) });
    const extra = await t.post("/detokenize", { tokens: [1], skip_special_tokens: true });
    expect(await errorOf(extra)).toMatchObject({ code: "invalid_request", param: "skip_special_tokens" });
    const missing = await t.post("/detokenize", { model: "nope", tokens: [1] });
    expect(missing.status).toBe(404);
  });
});

describe("GET /version and the model cards", () => {
  it("answers /version with the runner's version", async () => {
    const res = await t.app.request("/version");
    expect(res.status).toBe(200);
    expect(VersionResponseSchema.parse(await res.json())).toEqual({ version: t.runner.deps.version });
  });

  it("lists vLLM model cards: root, parent, max_model_len, permission", async () => {
    const list = RunnerModelListSchema.parse(await (await t.app.request("/v1/models")).json());
    expect(list.data.map((m) => m.id)).toEqual(["demo-llama", "support"]);
    const [base, support] = list.data;
    expect(base).toMatchObject({
      object: "model",
      root: dirs.model,
      parent: null,
      max_model_len: maxModelLen(),
      permission: [],
    });
    expect(support).toMatchObject({
      root: paths.support,
      parent: "demo-llama",
      max_model_len: maxModelLen(),
    });
    for (const card of list.data) {
      const res = await t.app.request(`/v1/models/${encodeURIComponent(card.id)}`);
      expect(res.status).toBe(200);
      expect(RunnerModelObjectSchema.parse(await res.json())).toEqual(card);
    }
    const byId = t.runner.deps.adapters.find("support")?.adapterId as string;
    const card = RunnerModelObjectSchema.parse(await (await t.app.request(`/v1/models/${byId}`)).json());
    expect(card).toMatchObject({ id: byId, parent: "demo-llama", root: paths.support });
  });

  it("answers 404 model_not_found for a model it does not serve, on every route that names one", async () => {
    for (const path of ["/v1/models/nope", "/v1/models/org/nope"]) {
      const res = await t.app.request(path);
      expect(res.status, path).toBe(404);
      const error = await errorOf(res);
      expect(error).toMatchObject({ code: "model_not_found", type: "not_found_error", param: "model" });
      expect(error.message).toContain(path.slice("/v1/models/".length));
    }
    const chat = await t.post("/v1/chat/completions", {
      model: "suport",
      messages: [{ role: "user", content: "x" }],
    });
    expect(chat.status).toBe(404);
    expect(await errorOf(chat)).toMatchObject({ code: "model_not_found", param: "model" });
    const completion = await complete("suport");
    expect(completion.status).toBe(404);
    expect((await errorOf(completion)).message).toContain('"suport"');
  });
});

describe("POST /v1/load_lora_adapter", () => {
  it("serves the same content under a second name from one slot, and unloading one name keeps the other", async () => {
    const first = await t.post("/v1/load_lora_adapter", { lora_name: "sql", lora_path: paths.sql });
    expect(first.status).toBe(201);
    const loaded = AdapterLoadResponseSchema.parse(await first.json());
    const expected = await completionText("sql");
    const alias = await t.post("/v1/load_lora_adapter", { lora_name: "sql-v2", lora_path: paths.sqlCopy });
    expect(alias.status).toBe(200);
    const aliased = AdapterLoadResponseSchema.parse(await alias.json());
    expect(aliased.loaded).toBe(false);
    expect(aliased.adapter).toMatchObject({
      adapterId: loaded.adapter.adapterId,
      slot: loaded.adapter.slot,
      name: "sql",
      names: ["sql", "sql-v2"],
    });
    expect((await residentAdapters()).length).toBe(2);
    expect(await completionText("sql-v2")).toBe(expected);
    const models = RunnerModelListSchema.parse(await (await t.app.request("/v1/models")).json()).data;
    expect(models.filter((m) => m.id.startsWith("sql")).map((m) => [m.id, m.root])).toEqual([
      ["sql", paths.sql],
      ["sql-v2", paths.sqlCopy],
    ]);
    // the same name for the same content again is a no-op
    const again = await t.post("/v1/load_lora_adapter", { lora_name: "sql", lora_path: paths.sql });
    expect(again.status).toBe(200);
    expect(AdapterLoadResponseSchema.parse(await again.json()).adapter.names).toEqual(["sql", "sql-v2"]);

    const unload = await t.post("/v1/unload_lora_adapter", { lora_name: "sql" });
    expect(unload.status).toBe(200);
    expect((await complete("sql")).status).toBe(404);
    expect(await completionText("sql-v2")).toBe(expected);
    const left = (await residentAdapters()).find((a) => a.adapterId === loaded.adapter.adapterId);
    expect(left).toMatchObject({ slot: loaded.adapter.slot, name: "sql-v2", names: ["sql-v2"] });

    expect((await t.post("/v1/unload_lora_adapter", { lora_name: "sql-v2" })).status).toBe(200);
    expect((await complete("sql-v2")).status).toBe(404);
    expect((await residentAdapters()).map((a) => a.names)).toEqual([["support"]]);
  });

  it("refuses with 400 a name already taken by different content, and the base model's name", async () => {
    const before = await completionText("support");
    const taken = await t.post("/v1/load_lora_adapter", { lora_name: "support", lora_path: paths.sql });
    expect(taken.status).toBe(400);
    const error = await errorOf(taken);
    expect(error).toMatchObject({
      code: "invalid_request",
      type: "invalid_request_error",
      param: "lora_name",
    });
    expect(error.message).toContain('"support"');
    // nothing changed: support still serves its own weights, and the refused content took no slot
    expect(await completionText("support")).toBe(before);
    expect((await residentAdapters()).map((a) => a.names)).toEqual([["support"]]);
    const base = await t.post("/v1/load_lora_adapter", { lora_name: "demo-llama", lora_path: paths.sql });
    expect(base.status).toBe(400);
    expect(await errorOf(base)).toMatchObject({ param: "lora_name" });
    // a content id names its adapter too, so it cannot become another adapter's name
    const supportId = t.runner.deps.adapters.find("support")?.adapterId as string;
    const asId = await t.post("/v1/load_lora_adapter", { lora_name: supportId, lora_path: paths.sql });
    expect(asId.status).toBe(400);
    expect((await residentAdapters()).length).toBe(1);
  });
});
