// The chat template gets vLLM's chat_template_kwargs as variables, and continue_final_message cuts the render
// right after the last message's text as transformers' apply_chat_template does, so the model continues it.
import { describe, expect, it } from "vitest";
import {
  compileChatTemplate,
  cutAfterFinalMessage,
} from "../../gpu-runner/engine/tokenizer/chat-template.ts";
import { DEMO_CHAT_TEMPLATE } from "../../scripts/demo-model/index.ts";
import { AppError } from "../../src/errors.ts";

const SPECIALS = { bos_token: "<s>", eos_token: "</s>" };
const demo = compileChatTemplate(DEMO_CHAT_TEMPLATE, SPECIALS);
const turn = (role: string, content: string) =>
  `<|start_header_id|>${role}<|end_header_id|>\n\n${content}<|eot_id|>`;

describe("chat_template_kwargs", () => {
  const thinking = compileChatTemplate(
    "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}" +
      "{% if enable_thinking is defined and not enable_thinking %}<no-think>{% else %}<think>{% endif %}",
    SPECIALS,
  );

  it("are template variables: enable_thinking switches the template's branch", () => {
    const messages = [{ role: "user", content: "hi" }];
    expect(thinking.render(messages, { addGenerationPrompt: true })).toBe("<s>hi<think>");
    expect(thinking.render(messages, { addGenerationPrompt: true, kwargs: { enable_thinking: false } })).toBe(
      "<s>hi<no-think>",
    );
  });

  it("win over the special tokens, as transformers merges them", () => {
    const messages = [{ role: "user", content: "hi" }];
    expect(thinking.render(messages, { addGenerationPrompt: true, kwargs: { bos_token: "[B]" } })).toBe(
      "[B]hi<think>",
    );
  });
});

describe("continue_final_message", () => {
  it("leaves the last assistant message open: no eot, no generation prompt", () => {
    const messages = [
      { role: "user", content: "hi" },
      { role: "assistant", content: "Hel" },
    ];
    const full = demo.render(messages, { addGenerationPrompt: false });
    expect(full).toBe(`<s>${turn("user", "hi")}${turn("assistant", "Hel")}`);
    expect(demo.render(messages, { addGenerationPrompt: false, continueFinalMessage: true })).toBe(
      `<s>${turn("user", "hi")}<|start_header_id|>assistant<|end_header_id|>\n\nHel`,
    );
  });

  it("cuts after the stripped text when the template trims the message, as transformers does", () => {
    // the demo template trims content, so the trailing space is not in the render and cannot be kept
    const messages = [
      { role: "user", content: "hi" },
      { role: "assistant", content: "Hel " },
    ];
    expect(
      demo.render(messages, { addGenerationPrompt: false, continueFinalMessage: true }).endsWith("\n\nHel"),
    ).toBe(true);
    // a template that keeps spacing keeps the trailing space
    expect(cutAfterFinalMessage("A: Hel <end>", "Hel ")).toBe("A: Hel");
    expect(cutAfterFinalMessage("A: Hel ", "Hel ")).toBe("A: Hel ");
    // the last occurrence is the one continued
    expect(cutAfterFinalMessage("Hel | Hel<end>", "Hel")).toBe("Hel | Hel");
  });

  it("refuses a template that drops the final message's text, naming continue_final_message", () => {
    const drops = compileChatTemplate("{% for m in messages %}[{{ m['role'] }}]{% endfor %}", SPECIALS);
    let error: unknown;
    try {
      drops.render([{ role: "assistant", content: "Hel" }], {
        addGenerationPrompt: false,
        continueFinalMessage: true,
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: "invalid_request", param: "continue_final_message" });
  });
});
