// `npm run make-demo-model -- --out <dir> [--seed N] [--adapters N]`: the small seeded Llama model that
// `npm start` and the runner tests serve, and optionally N demo LoRA adapters beside it.
import { join } from "node:path";
import { defineCommand } from "citty";
import { runChecked } from "../cli/flags.ts";
import { reportFailure } from "../cli/report.ts";
import { AppError } from "../src/errors.ts";
import { writeDemoAdapter } from "./demo-model/adapter.ts";
import { writeDemoModel } from "./demo-model/index.ts";

function nonNegativeInt(name: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isSafeInteger(n) || n < 0)
    throw new AppError("invalid_request", `--${name} must be a non-negative integer; got "${raw}"`, {
      param: name,
    });
  return n;
}

const command = defineCommand({
  meta: { name: "make-demo-model", description: "Write a small seeded Llama model in Hugging Face format" },
  args: {
    out: { type: "string", default: ".data/models/demo-llama", description: "output directory" },
    seed: { type: "string", default: "0", description: "weights seed" },
    adapters: { type: "string", default: "0", description: "also write N demo adapters to <out>-adapters/" },
    json: {
      type: "boolean",
      default: false,
      description: 'print {"model": dir, "adapters": [dir, ...]} when done; an error as {"error": {...}}',
    },
  },
  async run({ args }) {
    try {
      const seed = nonNegativeInt("seed", args.seed);
      const adapters = nonNegativeInt("adapters", args.adapters);
      await writeDemoModel({ out: args.out, seed });
      if (!args.json) console.log(`wrote ${args.out}`);
      const written: string[] = [];
      for (let k = 0; k < adapters; k++) {
        const dir = join(`${args.out}-adapters`, `demo-${k}`);
        await writeDemoAdapter(dir, { seed: seed * 1000 + k + 1 });
        written.push(dir);
        if (!args.json) console.log(`wrote ${dir}`);
      }
      if (args.json) console.log(JSON.stringify({ model: args.out, adapters: written }));
    } catch (error) {
      reportFailure(error, args.json);
    }
  },
});

await runChecked(command);
