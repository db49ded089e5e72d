// `node scripts/demo-data/index.ts --out <dir> [--rows 400] [--seed 7]`: writes the demo support-ticket
// datasets, classify.jsonl and reply.jsonl (chat "messages" rows), the same seeded tickets in both, and
// classify-launch.jsonl: the same without the "feature" category, the data support-classify was launched
// with (its first version in the demo).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { classifyRow, LATE_CATEGORY, makeTickets, replyRow } from "./tickets.ts";

export interface DemoDataPaths {
  classify: string;
  reply: string;
  classifyLaunch: string;
}

export function writeDemoData(out: string, rows: number, seed: number): DemoDataPaths {
  mkdirSync(out, { recursive: true });
  const tickets = makeTickets(rows, seed);
  const jsonl = (rows: typeof tickets, f: (t: (typeof tickets)[number]) => unknown) =>
    `${rows.map((t) => JSON.stringify(f(t))).join("\n")}\n`;
  const paths = {
    classify: join(out, "classify.jsonl"),
    reply: join(out, "reply.jsonl"),
    classifyLaunch: join(out, "classify-launch.jsonl"),
  };
  const launch = tickets.filter((t) => t.category !== LATE_CATEGORY);
  writeFileSync(paths.classify, jsonl(tickets, classifyRow));
  writeFileSync(paths.reply, jsonl(tickets, replyRow));
  writeFileSync(paths.classifyLaunch, jsonl(launch, classifyRow));
  return paths;
}

function count(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`--${name} must be a positive integer; got "${raw}"`);
  return n;
}

const command = defineCommand({
  meta: { name: "demo-data", description: "Write the seeded demo support-ticket datasets" },
  args: {
    out: { type: "string", default: ".data/demo-data", description: "output directory" },
    rows: { type: "string", default: "400", description: "tickets" },
    seed: { type: "string", default: "7", description: "seed" },
  },
  run({ args }) {
    const paths = writeDemoData(args.out, count("rows", args.rows), count("seed", args.seed));
    console.log(`wrote ${paths.classify}, ${paths.classifyLaunch} and ${paths.reply}`);
  },
});

if (import.meta.main) await runMain(command);
