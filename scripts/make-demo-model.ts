// `npm run make-demo-model -- --out <dir> [--seed N] [--adapters N]`: the small seeded Llama model that
// `npm start` and the runner tests serve, and optionally N demo LoRA adapters beside it.
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { writeDemoAdapter } from "./demo-model/adapter.ts";
import { writeDemoModel } from "./demo-model/index.ts";

function nonNegativeInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new Error(`--${name} must be a non-negative integer; got "${raw}"`);
  return n;
}

const command = defineCommand({
  meta: { name: "make-demo-model", description: "Write a small seeded Llama model in Hugging Face format" },
  args: {
    out: { type: "string", default: ".data/models/demo-llama", description: "output directory" },
    seed: { type: "string", default: "0", description: "weights seed" },
    adapters: { type: "string", default: "0", description: "also write N demo adapters to <out>-adapters/" },
  },
  async run({ args }) {
    const seed = nonNegativeInt("seed", args.seed);
    const adapters = nonNegativeInt("adapters", args.adapters);
    await writeDemoModel({ out: args.out, seed });
    console.log(`wrote ${args.out}`);
    for (let k = 0; k < adapters; k++) {
      const dir = join(`${args.out}-adapters`, `demo-${k}`);
      await writeDemoAdapter(dir, { seed: seed * 1000 + k + 1 });
      console.log(`wrote ${dir}`);
    }
  },
});

await runMain(command);
