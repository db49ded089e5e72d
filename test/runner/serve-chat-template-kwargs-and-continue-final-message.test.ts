// vLLM's chat rendering options on the real runner: chat_template_kwargs reach the model's template (a
// Qwen3-style enable_thinking switch written into chat_template.jinja), and continue_final_message leaves the
// last assistant message open with no generation prompt; what cannot be honoured is refused by name.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionSchema } from "../../src/contracts/openai.ts";
import { DEMO_CHAT_TEMPLATE } from "../../scripts/demo-model/index.ts";
import { type DemoDirs, errorOf, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

const THINK_OFF = "<think>\n\n</think>\n\n";

let dirs: DemoDirs;
let t: TestRunner;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  // the demo template plus Qwen3's way of turning thinking off: an empty think block after the prompt
  const template = `${DEMO_CHAT_TEMPLATE}{%- if add_generation_prompt and enable_thinking is defined and not enable_thinking %}{{- '${THINK_OFF.replace(/\n/g, "\\n")}' }}{%- endif %}`;
  await writeFile(join(dirs.model, "chat_template.jinja"), template);
  t = await startTestRunner(dirs.model);
});
afterAll(async () => {
  await t?.close();
  await dirs?.cleanup();
});

const base = { model: "demo-llama", temperature: 0, max_tokens: 4, return_token_ids: true };
const tok = () => t.runner.deps.tokenizer;

async function chat(body: Record<string, unknown>) {
  const res = await t.post("/v1/chat/completions", { ...base, ...body });
  const json = await res.json();
  expect(res.status, JSON.stringify(json)).toBe(200);
  return ChatCompletionSchema.parse(json);
}

describe("chat_template_kwargs", () => {
  const messages = [{ role: "user", content: "Tell me about the river." }];

  it("are passed to the template: enable_thinking false appends its empty think block", async () => {
    const plain = await chat({ messages });
    const off = await chat({ messages, chat_template_kwargs: { enable_thinking: false } });
    const rendered = tok().renderChat(messages, { addGenerationPrompt: true });
    expect(plain.prompt_token_ids).toEqual(tok().encode(rendered, { addSpecialTokens: false }));
    expect(off.prompt_token_ids).toEqual(tok().encode(rendered + THINK_OFF, { addSpecialTokens: false }));
    const on = await chat({ messages, chat_template_kwargs: { enable_thinking: true } });
    expect(on.prompt_token_ids).toEqual(plain.prompt_token_ids);
  });

  it("refuses a name the request sets through its own field", async () => {
    const res = await t.post("/v1/chat/completions", {
      ...base,
      messages,
      chat_template_kwargs: { add_generation_prompt: false },
    });
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatchObject({ param: "chat_template_kwargs.add_generation_prompt" });
  });
});

describe("chat_template_kwargs on POST /tokenize (as vLLM's TokenizeChatRequest)", () => {
  const messages = [{ role: "user", content: "Tell me about the river." }];

  it("renders with the kwargs, counting exactly what the same chat request prefills", async () => {
    const tokenize = async (body: Record<string, unknown>) => {
      const res = await t.post("/tokenize", body);
      const json = (await res.json()) as { tokens: number[]; count: number };
      expect(res.status, JSON.stringify(json)).toBe(200);
      return json;
    };
    const kwargs = { enable_thinking: false };
    const off = await tokenize({ messages, chat_template_kwargs: kwargs });
    const plain = await tokenize({ messages });
    const rendered = tok().renderChat(messages, { addGenerationPrompt: true });
    expect(plain.tokens).toEqual(tok().encode(rendered, { addSpecialTokens: false }));
    expect(off.tokens).toEqual(tok().encode(rendered + THINK_OFF, { addSpecialTokens: false }));
    expect(off.count).toBeGreaterThan(plain.count);
    expect((await chat({ messages, chat_template_kwargs: kwargs })).prompt_token_ids).toEqual(off.tokens);
  });

  it("refuses a name the request sets through its own field, and kwargs beside a plain prompt", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        { messages, chat_template_kwargs: { add_generation_prompt: false } },
        "chat_template_kwargs.add_generation_prompt",
      ],
      [{ prompt: "x", chat_template_kwargs: { enable_thinking: false } }, "chat_template_kwargs"],
      [{ messages, chat_template_kwargs: ["enable_thinking"] }, "chat_template_kwargs"],
    ];
    for (const [body, param] of cases) {
      const res = await t.post("/tokenize", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await errorOf(res)).toMatchObject({ code: "invalid_request", param });
    }
  });
});

describe("continue_final_message", () => {
  const messages = [
    { role: "user", content: "Tell me about the river." },
    { role: "assistant", content: "The river" },
  ];

  it("continues the assistant's message: its eot and any generation prompt are gone", async () => {
    const out = await chat({ messages, continue_final_message: true });
    const closed = tok().renderChat(messages, { addGenerationPrompt: false });
    expect(closed.endsWith("The river<|eot_id|>")).toBe(true);
    const open = closed.slice(0, -"<|eot_id|>".length);
    expect(out.prompt_token_ids).toEqual(tok().encode(open, { addSpecialTokens: false }));
    // and the completion follows from there: the same as a completions request on that text
    const res = await t.post("/v1/completions", {
      ...base,
      prompt: tok().encode(open, { addSpecialTokens: false }),
    });
    const legacy = (await res.json()) as { choices: { token_ids: number[] }[] };
    expect(out.choices[0]?.token_ids).toEqual(legacy.choices[0]?.token_ids);
  });

  it("refuses add_generation_prompt: true beside it, and a last message that is not the assistant's", async () => {
    const both = await t.post("/v1/chat/completions", {
      ...base,
      messages,
      continue_final_message: true,
      add_generation_prompt: true,
    });
    expect(both.status).toBe(400);
    expect(await errorOf(both)).toMatchObject({ param: "continue_final_message" });
    const user = await t.post("/v1/chat/completions", {
      ...base,
      messages: messages.slice(0, 1),
      continue_final_message: true,
    });
    expect(user.status).toBe(400);
    expect((await errorOf(user)).message).toContain('the last role is "user"');
  });
});
