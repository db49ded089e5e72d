// SFT data in JSONL: one object per line in one of the usual shapes, turned into token rows with a target
// mask. {"messages": [...]} goes through the model's chat template (targets: the last assistant turn);
// {"prompt", "completion"} (targets: the completion and EOS); {"text"} (targets: every token). Every bad line
// is collected with its number, so one run reports them all.
import { z } from "zod";
import { formatIssues } from "../../src/contracts/issues.ts";
import type { RunnerTokenizer } from "../engine/tokenizer/index.ts";
import type { TokenRow } from "./batches.ts";

const Message = z.looseObject({ role: z.enum(["system", "user", "assistant"]), content: z.string() });
const SHAPES = {
  messages: z.looseObject({ messages: z.array(Message).min(2) }),
  prompt: z.looseObject({ prompt: z.string(), completion: z.string().min(1) }),
  completion: z.looseObject({ prompt: z.string(), completion: z.string().min(1) }),
  text: z.looseObject({ text: z.string().min(1) }),
};
type Row =
  | { kind: "chat"; messages: z.infer<typeof Message>[] }
  | { kind: "pair"; prompt: string; completion: string }
  | { kind: "text"; text: string };

function toRow(v: Record<string, unknown>): Row {
  if (Array.isArray(v.messages)) return { kind: "chat", messages: v.messages as z.infer<typeof Message>[] };
  if (typeof v.completion === "string")
    return { kind: "pair", prompt: v.prompt as string, completion: v.completion };
  return { kind: "text", text: v.text as string };
}

export interface Example extends TokenRow {
  /** 1-based line in the file. */
  line: number;
  /** Prompt tokens and the expected answer text, for exact-match evaluation (absent for {"text"}). */
  prompt?: number[];
  answer?: string;
}

export interface BadRow {
  line: number;
  problem: string;
}

export interface DataOptions {
  /** Count every token as a target, not only completions. */
  allTokens: boolean;
  /** Longest row in tokens; longer rows are reported, not cut (a cut completion teaches the wrong end). */
  maxTokens: number;
}

function encodeRow(
  row: Row,
  tok: RunnerTokenizer,
  eos: number[],
): { prompt: number[]; completion: number[]; answer?: string } {
  if (row.kind === "chat") {
    const last = row.messages[row.messages.length - 1];
    if (last?.role !== "assistant") throw new Error('messages: the last message must have role "assistant"');
    const prompt = tok.encodeChat(row.messages.slice(0, -1), { addGenerationPrompt: true });
    const full = tok.encodeChat(row.messages, { addGenerationPrompt: false });
    if (prompt.some((t, i) => full[i] !== t))
      throw new Error("messages: the chat template's prompt is not a prefix of the full chat");
    return { prompt, completion: full.slice(prompt.length), answer: last.content };
  }
  if (row.kind === "pair") {
    const prompt = tok.encode(row.prompt);
    return {
      prompt,
      completion: [...tok.encode(row.completion, { addSpecialTokens: false }), ...eos],
      answer: row.completion,
    };
  }
  return { prompt: [], completion: [...tok.encode(row.text), ...eos] };
}

function parseLine(text: string): Row {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`not JSON (${(error as Error).message})`);
  }
  // The row's keys pick its shape, so the message names that shape's fields rather than a union's.
  const key = (["messages", "prompt", "completion", "text"] as const).find(
    (k) => typeof value === "object" && value !== null && k in value,
  );
  if (!key) throw new Error('must be an object with "messages", "prompt" and "completion", or "text"');
  const parsed = SHAPES[key].safeParse(value, { reportInput: true });
  if (!parsed.success) throw new Error(formatIssues(parsed.error).slice(0, 3).join("; "));
  return toRow(parsed.data);
}

export function parseJsonl(
  text: string,
  tok: RunnerTokenizer,
  eosTokenIds: number[],
  options: DataOptions,
): { examples: Example[]; bad: BadRow[] } {
  const examples: Example[] = [];
  const bad: BadRow[] = [];
  const eos = eosTokenIds.slice(0, 1);
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    try {
      const { prompt, completion, answer } = encodeRow(parseLine(raw), tok, eos);
      const tokens = [...prompt, ...completion];
      if (tokens.length > options.maxTokens)
        throw new Error(`has ${tokens.length} tokens; the limit is ${options.maxTokens}`);
      const target = tokens.map((_, k) => options.allTokens || k >= prompt.length);
      const evalFields = answer !== undefined && prompt.length > 0 ? { prompt, answer } : {};
      examples.push({ line, tokens, target, ...evalFields });
    } catch (error) {
      bad.push({ line, problem: (error as Error).message });
    }
  });
  return { examples, bad };
}

/** A seeded split: `fraction` of the examples (at least one when there are two or more) held out. */
export function splitExamples(
  examples: Example[],
  fraction: number,
  seed: number,
): { train: Example[]; validation: Example[] } {
  const order = examples.map((_, i) => i);
  let s = seed >>> 0 || 1;
  for (let i = order.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const n = fraction > 0 && examples.length >= 2 ? Math.max(1, Math.round(examples.length * fraction)) : 0;
  const held = new Set(order.slice(0, n));
  return {
    train: examples.filter((_, i) => !held.has(i)),
    validation: examples.filter((_, i) => held.has(i)),
  };
}
