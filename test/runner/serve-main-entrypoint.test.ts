// `npm run runner` as a user starts it: a real process on a real socket, RUNNER_TOKEN from the environment.
import { type ChildProcess, spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DemoDirs, makeDemoDirs, sseData } from "./serve-helpers.ts";

let dirs: DemoDirs;
let child: ChildProcess;
let base: string;
let log = "";
const auth = { authorization: "Bearer tok", "content-type": "application/json" };

beforeAll(async () => {
  dirs = await makeDemoDirs();
  const lora = await dirs.adapter("demo-0", { seed: 9 });
  child = spawn(
    process.execPath,
    [
      "gpu-runner/serving/main.ts",
      "--model",
      dirs.model,
      "--lora",
      `demo-0=${lora}`,
      "--port",
      "0",
      "--max-batch",
      "4",
    ],
    { env: { ...process.env, RUNNER_TOKEN: "tok" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  base = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(log);
      if (match) resolve(match[1] as string);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => reject(new Error(`runner exited ${code}:\n${log}`)));
  });
});
afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
  await dirs?.cleanup();
});

describe("gpu-runner/serving/main.ts", () => {
  it("serves chat over HTTP with the static adapter, behind RUNNER_TOKEN (probes open)", async () => {
    expect(log).toContain("demo-llama (llama) on cpu/native");
    expect((await fetch(`${base}/v1/models`)).status).toBe(401);
    // --public-probes defaults to true, as vLLM: probes and scrapers need no token
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        model: "demo-0",
        messages: [{ role: "user", content: "Hello!" }],
        max_tokens: 8,
        stream: true,
      }),
    });
    expect(res.status).toBe(200);
    expect(sseData(await res.text()).at(-1)).toBe("[DONE]");
  });

  it("cancels a generation when the client disconnects from the socket", async () => {
    const controller = new AbortController();
    const res = await fetch(`${base}/v1/completions`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        model: "demo-llama",
        prompt: "The",
        max_tokens: 1800,
        stream: true,
        temperature: 0,
      }),
      signal: controller.signal,
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    controller.abort();
    const metric = async (name: string) => {
      const text = await (await fetch(`${base}/metrics`, { headers: auth })).text();
      return Number(
        text
          .split("\n")
          .find((l) => l.startsWith(`${name} `))
          ?.split(" ")[1],
      );
    };
    const deadline = Date.now() + 10_000;
    while ((await metric("runner_running_sequences")) !== 0) {
      if (Date.now() > deadline) throw new Error("the disconnected request still holds its row");
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await metric('runner_generated_tokens_total{adapter_id="base"}')).toBeLessThan(1800);
  });

  it("exits with the flag, the rule and the value on a bad command line", async () => {
    const bad = spawn(
      process.execPath,
      ["gpu-runner/serving/main.ts", "--model", dirs.model, "--max-batch", "zero"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let err = "";
    bad.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
    const code = await new Promise((r) => bad.on("exit", r));
    expect(code).toBe(2);
    expect(err).toContain('--max-batch must be an integer in 1..4096; got "zero"');
  });

  it("prints its usage on --help and its version on --version, with no model and no stack trace", async () => {
    for (const [flag, expected] of [
      ["--help", "--max-lora-rank"],
      ["--help", "--public-probes"],
      ["--version", "lora-edge runner "],
    ] as const) {
      const child = spawn(process.execPath, ["gpu-runner/serving/main.ts", flag], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      child.stdout?.on("data", (c: Buffer) => {
        out += c.toString();
      });
      child.stderr?.on("data", (c: Buffer) => {
        err += c.toString();
      });
      const code = await new Promise((r) => child.on("exit", r));
      expect(code).toBe(0);
      expect(out).toContain(expected);
      expect(err).not.toContain("at ");
    }
  });
});
