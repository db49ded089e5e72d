// Chat template rendering with @huggingface/jinja, fed the same variables transformers'
// `apply_chat_template` passes: messages, add_generation_prompt, the special tokens by name and the caller's
// template kwargs (vLLM's chat_template_kwargs), and its continue_final_message cut.
import { Template } from "@huggingface/jinja";
import { AppError } from "../../../src/errors.ts";
// Python's strip(chars) semantics for the templates (python-strip.ts says why).
import "./python-strip.ts";

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface RenderOptions {
  addGenerationPrompt: boolean;
  /**
   * Leave the last message open, so generation continues it (transformers' continue_final_message): the
   * render is cut right after that message's text, dropping whatever the template closes it with.
   */
  continueFinalMessage?: boolean;
  /** Extra template variables (vLLM's chat_template_kwargs, e.g. enable_thinking); they win over specials. */
  kwargs?: Readonly<Record<string, unknown>>;
}

export interface ChatTemplate {
  render(messages: ChatMessage[], options: RenderOptions): string;
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

/**
 * transformers' cut for continue_final_message: the last occurrence of the final message's stripped text,
 * keeping its leading spaces' effect and, when the template kept them, its trailing ones.
 */
export function cutAfterFinalMessage(rendered: string, finalText: string): string {
  const stripped = finalText.trim();
  const at = rendered.lastIndexOf(stripped);
  if (at === -1) {
    throw new AppError(
      "invalid_request",
      "continue_final_message: the chat template does not render the final message's text, so it cannot be continued; send continue_final_message: false",
      { param: "continue_final_message" },
    );
  }
  if (rendered.slice(at).trim() === stripped) return rendered.slice(0, at + finalText.trimStart().length);
  return rendered.slice(0, at + stripped.length);
}

export function compileChatTemplate(source: string, specialTokens: Record<string, string>): ChatTemplate {
  let template: Template;
  try {
    template = new Template(source);
  } catch (error) {
    throw new AppError("invalid_model", `chat_template does not parse: ${(error as Error).message}`);
  }
  return {
    render(messages, options) {
      let rendered: string;
      try {
        rendered = template.render({
          ...specialTokens,
          ...options.kwargs,
          messages,
          add_generation_prompt: options.addGenerationPrompt,
        });
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
      const last = messages.at(-1);
      if (options.continueFinalMessage !== true || last === undefined) return rendered;
      return cutAfterFinalMessage(rendered, last.content);
    },
  };
}
