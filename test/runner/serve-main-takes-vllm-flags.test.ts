// `node gpu-runner/serving/main.ts` started as a vLLM user would (`vllm serve <model> --served-model-name ...
// --lora-modules ... --api-key ... --max-model-len ...`) on the Hugging Face fixture model: /v1/models lists
// every served name and each static adapter with its parent, the key guards every route but the probes,
// --max-model-len bounds requests with vLLM's 400 while greedy output stays HF's, and what cannot start is
// refused at start with exit code 2, naming the flag.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { RunnerModelListSchema } from "../../src/contracts/runner-vllm.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const MODEL = join("test", "fixtures", "hf", "tiny-llama");
const ADAPTERS = join(MODEL, "adapters");
const KEY = "sk-vllm-style-key";

const CaseSchema = z.looseObject({
  adapter: z.string().nullable(),
  input_ids: z.array(z.number().int()).min(1),
  greedy: z.array(z.number().int()).length(8),
});
const EXPECTED = z
  .looseObject({ cases: z.array(CaseSchema).min(1) })
  .parse(JSON.parse(readFileSync(join(ROOT, MODEL, "expected.json"), "utf8")));

/** The environment without any runner key, so only what a test sets applies. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { RUNNER_TOKEN: _r, VLLM_API_KEY: _v, ...env } = process.env;
  return { ...env, ...extra };
}

interface Started {
  child: ChildProcess;
  base: string;
  log: () => string;
}

/** Spawns the runner in its own process group on a port the OS picks, read from its start-up line. */
async function start(args: string[], env: Record<string, string> = {}): Promise<Started> {
  const child = spawn(
    process.execPath,
    ["gpu-runner/serving/main.ts", ...args, "--port", "0", "--threads", "1"],
    {
      cwd: ROOT,
      env: cleanEnv(env),
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
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

async function stop(started: Started | undefined): Promise<void> {
  const child = started?.child;
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.kill(-child.pid, "SIGTERM");
  await exited;
}

/** Runs the runner to its exit (it must not start), in its own process group, killed if it outlives 60 s. */
async function refused(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; err: string }> {
  const child = spawn(process.execPath, ["gpu-runner/serving/main.ts", ...args, "--port", "0"], {
    cwd: ROOT,
    env: cleanEnv(env),
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
  });
  child.stdout?.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const timer = setTimeout(() => child.pid && process.kill(-child.pid, "SIGKILL"), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  clearTimeout(timer);
  return { code, err };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}`, "content-type": "application/json" });

describe("the runner started with vLLM's flags", () => {
  let runner: Started;

  beforeAll(async () => {
    runner = await start([
      MODEL,
      "--enable-lora",
      "--served-model-name",
      "llama-tiny",
      "tiny",
      "--lora-modules",
      `qv=${join(ADAPTERS, "qv")}`,
      JSON.stringify({ name: "all7", path: join(ADAPTERS, "all7"), base_model_name: "tiny" }),
      "--lora",
      `patterns=${join(ADAPTERS, "patterns")}`,
      "--api-key",
      KEY,
      "--max-model-len",
      "48",
    ]);
  });
  afterAll(async () => {
    await stop(runner);
  });

  const completion = (body: Record<string, unknown>, key = KEY) =>
    fetch(`${runner.base}/v1/completions`, {
      method: "POST",
      headers: bearer(key),
      body: JSON.stringify({ max_tokens: 8, temperature: 0, ...body }),
    });

  it("lists every served name of the base and each --lora-modules adapter with its parent", async () => {
    expect(runner.log()).toContain("runner: llama-tiny (llama)");
    const res = await fetch(`${runner.base}/v1/models`, { headers: bearer(KEY) });
    expect(res.status).toBe(200);
    const { data } = RunnerModelListSchema.parse(await res.json());
    expect(data.map((m) => [m.id, m.parent, m.root, m.max_model_len])).toEqual([
      ["llama-tiny", null, MODEL, 48],
      ["tiny", null, MODEL, 48],
      ["patterns", "llama-tiny", join(ADAPTERS, "patterns"), 48],
      ["qv", "llama-tiny", join(ADAPTERS, "qv"), 48],
      ["all7", "tiny", join(ADAPTERS, "all7"), 48],
    ]);
    const card = await fetch(`${runner.base}/v1/models/tiny`, { headers: bearer(KEY) });
    expect(((await card.json()) as { id: string }).id).toBe("tiny");
    // the folder's own name is no longer one of the base's names
    expect((await fetch(`${runner.base}/v1/models/tiny-llama`, { headers: bearer(KEY) })).status).toBe(404);
  });

  it("answers every served name with HF's greedy tokens, base and adapters", async () => {
    for (const c of EXPECTED.cases) {
      for (const model of c.adapter === null ? ["llama-tiny", "tiny"] : [c.adapter]) {
        const res = await completion({ model, prompt: c.input_ids });
        const json = await res.json();
        expect(res.status, JSON.stringify(json)).toBe(200);
        const parsed = CompletionSchema.parse(json);
        expect(parsed.model).toBe(model);
        expect(parsed.choices[0]?.token_ids, `${model} ${JSON.stringify(c.input_ids)}`).toEqual(c.greedy);
      }
    }
    const missing = await completion({ model: "tiny-llama", prompt: [1, 2] });
    expect(missing.status).toBe(404);
  });

  it("guards every route with the --api-key as vLLM does, leaving the probes open", async () => {
    expect((await fetch(`${runner.base}/v1/models`)).status).toBe(401);
    expect((await completion({ model: "tiny", prompt: [1, 2] }, "sk-wrong")).status).toBe(401);
    const missing = await fetch(`${runner.base}/v1/models`);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toContain("--api-key");
    expect((await fetch(`${runner.base}/health`)).status).toBe(200);
    expect((await fetch(`${runner.base}/metrics`)).status).toBe(200);
  });

  it("bounds prompt + max_tokens by --max-model-len with vLLM's 400, as for the model's own limit", async () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => 3 + (i % 200));
    const fits = await completion({ model: "qv", prompt: ids(40), max_tokens: 8 });
    expect(fits.status).toBe(200);
    const over = await completion({ model: "qv", prompt: ids(40), max_tokens: 9 });
    expect(over.status).toBe(400);
    const error = ((await over.json()) as { error: { message: string; param: string } }).error;
    expect(error.message).toContain(
      "This model's maximum context length is 48 tokens. However, you requested 49 tokens (40 in the prompt, 9 in the completion)",
    );
    expect(error.param).toBe("max_tokens");
    const full = await completion({ model: "tiny", prompt: ids(48), max_tokens: 1 });
    expect(full.status).toBe(400);
    // without max_tokens a completion may run to the bound and no further
    const open = await completion({
      model: "tiny",
      prompt: ids(44),
      max_tokens: undefined,
      ignore_eos: true,
    });
    const body = CompletionSchema.parse(await open.json());
    expect(body.usage?.completion_tokens).toBeLessThanOrEqual(4);
  });
});

describe("the runner with VLLM_API_KEY and the fused graph", () => {
  let runner: Started;

  beforeAll(async () => {
    runner = await start(
      [
        "--model",
        MODEL,
        "--lora-modules",
        `qv=${join(ADAPTERS, "qv")}`,
        "--graph",
        "fused",
        "--max-model-len",
        "64",
      ],
      { VLLM_API_KEY: KEY },
    );
  });
  afterAll(async () => {
    await stop(runner);
  });

  it("takes its key from VLLM_API_KEY and its context from --max-model-len on the fused graph", async () => {
    expect((await fetch(`${runner.base}/v1/models`)).status).toBe(401);
    const res = await fetch(`${runner.base}/v1/models`, { headers: bearer(KEY) });
    const { data } = RunnerModelListSchema.parse(await res.json());
    expect(data.map((m) => [m.id, m.max_model_len])).toEqual([
      ["tiny-llama", 64],
      ["qv", 64],
    ]);
    for (const c of EXPECTED.cases.filter((c) => c.adapter === null || c.adapter === "qv")) {
      const out = await fetch(`${runner.base}/v1/completions`, {
        method: "POST",
        headers: bearer(KEY),
        body: JSON.stringify({
          model: c.adapter ?? "tiny-llama",
          prompt: c.input_ids,
          max_tokens: 8,
          temperature: 0,
        }),
      });
      expect(CompletionSchema.parse(await out.json()).choices[0]?.token_ids).toEqual(c.greedy);
    }
  });
});

describe("what the runner refuses at start", () => {
  it.each([
    [
      ["--model", MODEL, "--max-model-len", "200"],
      {},
      "--max-model-len must be <= the model's max positions (128); got 200",
    ],
    [["--model", MODEL, "--quantize", "int4"], {}, "--quantize must be absent with --graph primitive"],
    [["--model", MODEL, "--precision", "float16"], {}, "--precision must be float32 with --graph primitive"],
    [
      ["--model", MODEL, "--tensor-parallel-size", "2"],
      {},
      "--tensor-parallel-size: a vLLM flag this runner does not implement",
    ],
    [
      ["--model", MODEL, "--api-key", "a"],
      { RUNNER_TOKEN: "b" },
      "--api-key, RUNNER_TOKEN are set to different keys",
    ],
    [
      [
        "--model",
        MODEL,
        "--lora-modules",
        JSON.stringify({ name: "qv", path: join(ADAPTERS, "qv"), base_model_name: "x" }),
      ],
      {},
      "--lora-modules must be a base_model_name the base answers to (tiny-llama; see --served-model-name)",
    ],
  ] as [string[], Record<string, string>, string][])(
    "%j exits 2, naming the flag",
    async (args, env, message) => {
      const { code, err } = await refused(args, env);
      expect(err).toContain(message);
      expect(code).toBe(2);
      expect(err).not.toMatch(/\n\s+at /);
    },
  );
});
