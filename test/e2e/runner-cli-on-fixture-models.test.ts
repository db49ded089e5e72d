// The runner as a user starts it, on the Hugging Face fixture models (save_pretrained directories without a
// tokenizer): `node gpu-runner/serving/main.ts --model <dir> --lora ...` comes up in token-ids mode, and greedy
// completions over HTTP return exactly the tokens transformers + PEFT produced (expected.json), one request
// at a time and all at once with mixed adapters.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { RunnerHealthSchema } from "../../src/contracts/runner.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const NODE = join(ROOT, "node_modules", ".bin", "node");
const ADAPTERS = ["qv", "all7", "patterns"];

const CaseSchema = z.looseObject({
  adapter: z.enum(ADAPTERS).nullable(),
  input_ids: z.array(z.number().int()).min(1),
  greedy: z.array(z.number().int()).length(8),
});
const ExpectedSchema = z.looseObject({
  cases: z.array(CaseSchema).min(8),
  mixed_batch: z.array(CaseSchema).min(2),
});
type Case = z.infer<typeof CaseSchema>;

interface Started {
  child: ChildProcess;
  base: string;
  log: () => string;
}

/** Spawns the runner on port 0 and reads the port the OS gave it from the start-up line. */
async function startRunner(args: string[]): Promise<Started> {
  const child = spawn(NODE, ["gpu-runner/serving/main.ts", ...args, "--port", "0"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const base = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(log);
      if (match) resolve(match[1] as string);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => reject(new Error(`runner exited ${code}:\n${log}`)));
  });
  return { child, base, log: () => log };
}

async function stopRunner(started: Started | undefined): Promise<void> {
  const child = started?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

describe.each(["tiny-llama", "tiny-llama3", "tiny-qwen2"])("gpu-runner/serving/main.ts on %s", (model) => {
  const dir = join("test", "fixtures", "hf", model);
  const expected = ExpectedSchema.parse(JSON.parse(readFileSync(join(ROOT, dir, "expected.json"), "utf8")));
  let runner: Started;

  beforeAll(async () => {
    const loras = ADAPTERS.flatMap((name) => ["--lora", `${name}=${join(dir, "adapters", name)}`]);
    runner = await startRunner(["--model", dir, ...loras, "--threads", "1"]);
  });
  afterAll(async () => {
    await stopRunner(runner);
  });

  async function greedy(c: Case): Promise<number[] | undefined> {
    const res = await fetch(`${runner.base}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: c.adapter ?? model,
        prompt: c.input_ids,
        max_tokens: 8,
        temperature: 0,
      }),
    });
    const json = await res.json();
    expect(res.status, JSON.stringify(json)).toBe(200);
    const choice = CompletionSchema.parse(json).choices[0];
    expect(choice?.text).toBe("");
    return choice?.token_ids;
  }

  it("starts in token-ids mode and says so in its start-up line and /health", async () => {
    expect(runner.log()).toContain(`runner: ${model} (`);
    expect(runner.log()).toContain("token-ids mode (no tokenizer.json");
    const health = RunnerHealthSchema.parse(await (await fetch(`${runner.base}/health`)).json());
    expect(health).toMatchObject({ model, mode: "token_ids", residentAdapters: ADAPTERS.length });
  });

  it("returns HF's greedy tokens for every expected.json case, base and each adapter", async () => {
    for (const c of expected.cases) {
      expect(await greedy(c), `${c.adapter ?? "base"} ${JSON.stringify(c.input_ids)}`).toEqual(c.greedy);
    }
  });

  it("returns the same tokens when every case and the mixed batch arrive at once", async () => {
    const all = [...expected.cases, ...expected.mixed_batch];
    const got = await Promise.all(all.map(greedy));
    expect(got).toEqual(all.map((c) => c.greedy));
  });
});
