// Chat template rendering with @huggingface/jinja, fed the same variables transformers'
// `apply_chat_template` passes: messages, add_generation_prompt and the special tokens by name.
import { Template } from "@huggingface/jinja";
import { AppError } from "../../../src/errors.ts";

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface ChatTemplate {
  render(messages: ChatMessage[], options: { addGenerationPrompt: boolean }): string;
}

/** `tokenizer_config.json` may hold one template or a list of named ones; "default" is the chat template. */
export function pickTemplate(raw: unknown): string | null {
  if (typeof raw === "string") return raw;
  if (!Array.isArray(raw)) return null;
  for (const entry of raw) {
    if (
      entry &&
      typeof entry === "object" &&
      entry.name === "default" &&
      typeof entry.template === "string"
    ) {
      return entry.template;
    }
  }
  return null;
}

export function compileChatTemplate(source: string, specialTokens: Record<string, string>): ChatTemplate {
  let template: Template;
  try {
    template = new Template(source);
  } catch (error) {
    throw new AppError("invalid_model", `chat_template does not parse: ${(error as Error).message}`);
  }
  return {
    render(messages, { addGenerationPrompt }) {
      try {
        return template.render({ ...specialTokens, messages, add_generation_prompt: addGenerationPrompt });
      } catch (error) {
        // templates raise on purpose (e.g. "roles must alternate"): that is the caller's mistake
        throw new AppError(
          "invalid_request",
          `chat template refused the messages: ${(error as Error).message}`,
          {
            param: "messages",
          },
        );
      }
    },
  };
}
