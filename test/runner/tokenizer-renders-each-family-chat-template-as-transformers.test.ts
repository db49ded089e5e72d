// Each family's chat template as the family ships it in tokenizer_config.json (Llama 3's header tokens and
// <|eot_id|>, Qwen3's ChatML with its thinking switch, Gemma 2 and 3's <start_of_turn>/<end_of_turn>, Phi-3's
// <|user|>…<|end|>), loaded by the runner's tokenizer loader and rendered for the same conversations as
// transformers' apply_chat_template rendered them (test/fixtures/hf/chat-templates/, made by its script):
// the same text, and the same refusals where a template raises.
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { loadTokenizer, type RunnerTokenizer } from "../../gpu-runner/engine/tokenizer/index.ts";
import { AppError } from "../../src/errors.ts";

const FIXTURES = "test/fixtures/hf/chat-templates";
const FAMILIES = ["llama3", "qwen3", "gemma2", "gemma3", "phi3"] as const;

const CaseSchema = z.strictObject({
  name: z.string(),
  messages: z.array(z.strictObject({ role: z.string(), content: z.string() })).min(1),
  add_generation_prompt: z.boolean().optional(),
  continue_final_message: z.boolean().optional(),
  kwargs: z.record(z.string(), z.unknown()).optional(),
});
const cases = z
  .strictObject({ cases: z.array(CaseSchema).min(8) })
  .parse(JSON.parse(readFileSync(join(FIXTURES, "cases.json"), "utf8"))).cases;
const RenderSchema = z.union([
  z.strictObject({ text: z.string() }),
  z.strictObject({ error: z.string(), type: z.literal("TemplateError") }),
]);
const expected = z
  .looseObject({ renders: z.record(z.enum(FAMILIES), z.record(z.string(), RenderSchema)) })
  .parse(JSON.parse(readFileSync(join(FIXTURES, "expected.json"), "utf8"))).renders;

const root = { dir: "" };
const tokenizers = new Map<string, RunnerTokenizer>();

beforeAll(async () => {
  root.dir = await mkdtemp(join(tmpdir(), "lora-edge-chat-templates-"));
  for (const family of FAMILIES) {
    // A model directory as the runner reads it: any tokenizer.json beside the family's tokenizer_config.json
    // (the template and its special tokens come from the config alone).
    const dir = join(root.dir, family);
    await mkdir(dir);
    await copyFile("test/fixtures/tokenizer/bpe-small/tokenizer.json", join(dir, "tokenizer.json"));
    await copyFile(join(FIXTURES, family, "tokenizer_config.json"), join(dir, "tokenizer_config.json"));
    tokenizers.set(family, await loadTokenizer(dir));
  }
});
afterAll(async () => {
  if (root.dir) await rm(root.dir, { recursive: true, force: true });
});

describe.each(FAMILIES)("%s's chat template", (family) => {
  it("has a transformers render for every case", () => {
    expect(Object.keys(expected[family] ?? {}).sort()).toEqual(cases.map((c) => c.name).sort());
  });

  it.each(cases.map((c) => [c.name, c] as const))("renders %s as transformers does", (name, c) => {
    const want = expected[family]?.[name];
    const tok = tokenizers.get(family) as RunnerTokenizer;
    const render = () =>
      tok.renderChat(c.messages, {
        addGenerationPrompt: c.add_generation_prompt ?? false,
        continueFinalMessage: c.continue_final_message ?? false,
        ...(c.kwargs ? { kwargs: c.kwargs } : {}),
      });
    if (want && "text" in want) {
      expect(render()).toBe(want.text);
      return;
    }
    let error: unknown;
    try {
      render();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe("invalid_request");
    expect((error as AppError).message).toBe(`chat template refused the messages: ${want?.error}`);
  });
});

describe("the families' templates differ where they should", () => {
  it("qwen3's enable_thinking=false closes an empty think block; the others ignore it", () => {
    const on = expected.qwen3["thinking-on"];
    const off = expected.qwen3["thinking-off"];
    expect(
      on && "text" in on && off && "text" in off && off.text === `${on.text}<think>\n\n</think>\n\n`,
    ).toBe(true);
    for (const family of ["llama3", "gemma2", "gemma3", "phi3"] as const) {
      expect(expected[family]["thinking-on"]).toEqual(expected[family]["thinking-off"]);
    }
  });
});
