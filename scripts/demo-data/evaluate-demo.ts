// `node scripts/demo-data/evaluate-demo.ts [--demo .data/demo] [--tickets 200]`: the demo's figures on
// held-out tickets (heldOutTickets: none was trained on): classification accuracy of each support-classify
// version and how often support-reply's answer is Nimbus's reply template with the ticket's fields filled in.
// Greedy output of the serving Engine, so the figures are what the runner answers. It never trains.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { createEngineFromModel } from "../../gpu-runner/engine/engine.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { readPeftDir } from "../../gpu-runner/engine/model/peft-dir.ts";
import { argmax } from "../../gpu-runner/engine/sampler.ts";
import { type ChatMessage, loadTokenizer } from "../../gpu-runner/engine/tokenizer/index.ts";
import type { Engine } from "../../gpu-runner/engine/types.ts";
import {
  CATEGORIES,
  checkReply,
  demoHeldOutTickets,
  type ReplyCheck,
  SYSTEM_CLASSIFY,
  SYSTEM_REPLY,
  type Ticket,
} from "./tickets.ts";
import { DEMO_RECORD } from "./train-demo.ts";

export interface DemoFigures {
  tickets: number;
  /** Held-out accuracy per support-classify version (label → share of exact category answers). */
  classify: Record<string, number>;
  /** Per category, per version: the share answered right. */
  classifyByCategory: Record<string, Record<string, number>>;
  /** support-reply: the share of replies whose shape, each field, and the whole text match. */
  reply: Record<keyof ReplyCheck, number>;
  /** A few held-out replies as answered, for reading. */
  replySamples: { ticket: string; reply: string }[];
}

const BATCH = 16;

/** Greedy answers of the adapter in `slot` to each chat, `limit` tokens at most, batched. */
async function answers(
  engine: Engine,
  slot: number,
  prompts: number[][],
  limit: number,
  eos: number[],
): Promise<number[][]> {
  const out: number[][] = [];
  for (let i = 0; i < prompts.length; i += BATCH) {
    const rows = prompts
      .slice(i, i + BATCH)
      .map((p) => ({ seq: engine.createSequence(slot), next: p, out: [] as number[], done: false }));
    try {
      for (let t = 0; t < limit && rows.some((r) => !r.done); t++) {
        const live = rows.filter((r) => !r.done);
        const logits = await engine.step(live.map((r) => ({ seq: r.seq, tokens: r.next })));
        live.forEach((r, j) => {
          const id = argmax(logits[j] as Float32Array);
          if (eos.includes(id)) r.done = true;
          else {
            r.out.push(id);
            r.next = [id];
          }
        });
      }
    } finally {
      for (const r of rows) engine.release(r.seq);
    }
    out.push(...rows.map((r) => r.out));
  }
  return out;
}

export interface EvaluateOptions {
  /** The served base (the warmed demo base). */
  base: string;
  /** support-classify versions to compare, label → PEFT dir. */
  classify: Record<string, string>;
  /** The support-reply PEFT dir. */
  reply: string;
  tickets: number;
  threads: number;
}

export async function evaluateDemo(o: EvaluateOptions): Promise<DemoFigures> {
  const model = await loadHfModel(o.base);
  const tok = await loadTokenizer(o.base);
  const tickets = demoHeldOutTickets(o.tickets);
  const chat = (system: string, t: Ticket): number[] => {
    const messages: ChatMessage[] = [
      { role: "system", content: system },
      { role: "user", content: t.text },
    ];
    return tok.encodeChat(messages, { addGenerationPrompt: true });
  };
  const labels = Object.keys(o.classify);
  const dirs = [...labels.map((l) => o.classify[l] as string), o.reply];
  const weights = dirs.map((d) => readPeftDir(d, model.spec));
  const maxRank = Math.max(...weights.flatMap((w) => w.modules.map((m) => m.rank)));
  const engine = await createEngineFromModel(model, { maxSlots: dirs.length, maxRank, threads: o.threads });
  try {
    weights.forEach((w, k) => {
      engine.setSlot(k + 1, w);
    });
    const classify: Record<string, number> = {};
    const classifyByCategory: Record<string, Record<string, number>> = {};
    const classifyPrompts = tickets.map((t) => chat(SYSTEM_CLASSIFY, t));
    for (const [k, label] of labels.entries()) {
      const said = (await answers(engine, k + 1, classifyPrompts, 12, model.eosTokenIds)).map((ids) =>
        tok.decode(ids, { skipSpecialTokens: true }).trim().toLowerCase(),
      );
      const right = tickets.map((t, i) => said[i] === t.category);
      classify[label] = right.filter(Boolean).length / tickets.length;
      classifyByCategory[label] = Object.fromEntries(
        CATEGORIES.map((c) => {
          const rows = right.filter((_, i) => tickets[i]?.category === c);
          return [c, rows.filter(Boolean).length / rows.length];
        }),
      );
    }
    const replies = (
      await answers(
        engine,
        dirs.length,
        tickets.map((t) => chat(SYSTEM_REPLY, t)),
        160,
        model.eosTokenIds,
      )
    ).map((ids) => tok.decode(ids, { skipSpecialTokens: true }));
    const checks = tickets.map((t, i) => checkReply(t, replies[i] as string));
    const share = (key: keyof ReplyCheck) => checks.filter((c) => c[key]).length / checks.length;
    return {
      tickets: tickets.length,
      classify,
      classifyByCategory,
      reply: {
        template: share("template"),
        name: share("name"),
        category: share("category"),
        about: share("about"),
        body: share("body"),
        exact: share("exact"),
      },
      replySamples: tickets.slice(0, 3).map((t, i) => ({ ticket: t.text, reply: replies[i] as string })),
    };
  } finally {
    await engine.dispose();
    model.weights.close();
  }
}

const command = defineCommand({
  meta: { name: "evaluate-demo", description: "Held-out figures of the trained demo adapters" },
  args: {
    demo: { type: "string", default: ".data/demo", description: "what train-demo.ts wrote" },
    tickets: { type: "string", default: "200", description: "held-out tickets" },
    threads: { type: "string", default: "2", description: "CPU threads" },
  },
  async run({ args }) {
    const tickets = Number(args.tickets);
    const threads = Number(args.threads);
    for (const [flag, n] of [
      ["tickets", tickets],
      ["threads", threads],
    ] as const) {
      if (!Number.isSafeInteger(n) || n < 1) {
        console.error(`--${flag} must be an integer >= 1; got "${args[flag]}"`);
        process.exit(2);
      }
    }
    const base = existsSync(args.demo) ? readdirSync(args.demo).find((d) => d.endsWith("-warm")) : undefined;
    if (!existsSync(join(args.demo, DEMO_RECORD)) || base === undefined) {
      console.error(
        `--demo ${args.demo}: no trained demo there; run node scripts/demo-data/train-demo.ts first`,
      );
      process.exit(2);
    }
    const adapters = join(args.demo, "adapters");
    const figures = await evaluateDemo({
      base: join(args.demo, base),
      classify: {
        "support-classify@1": join(adapters, "support-classify-launch"),
        "support-classify@2": join(adapters, "support-classify"),
      },
      reply: join(adapters, "support-reply"),
      tickets,
      threads,
    });
    console.log(JSON.stringify(figures, null, 2));
  },
});

if (import.meta.main) await runMain(command);
