// `npm run bench:overload -- [--scenario prompt|tenants|both] [--quiet-requests 30] [--prefill-tokens 512,64]`
// The runner under attack and overload, as a client sees it, on the demo model (a real tokenizer) in a runner
// process of its own (the client's own work never shares its event loop):
// - prompt: one client streams 200 tokens while another sends a 5 MB chat prompt (tokenized in a worker, then
//   refused for the context; the runner's --tokenize-deadline-ms is raised so that it is tokenized whole) and a 10 MB one (refused by the character bound before tokenizing); /health is
//   polled meanwhile. Reports the stream's inter-token gaps (p50, p99, max) alone and beside each big prompt,
//   the big prompt's answer and time, and /health's slowest answer.
// - tenants: a quiet tenant sends 5-token requests one after another, alone and then while a noisy tenant
//   floods the runner with three 64-prompt requests at a time (more than its share of the queue: the rest
//   are refused with 429 and retried after retry-after); reports the quiet tenant's TTFT (p50, p95) and
//   the ratio to unloaded. One runner per case: tenants named (x-lora-edge-tenant, fair scheduling) at each
//   --prefill-tokens budget (the runner's --max-prefill-tokens), then unnamed (one group in arrival order,
//   as before fair scheduling; --no-unnamed leaves it out).
// Every runner started is stopped (its whole process group), also on failure; ports are picked free.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand, runMain } from "citty";
import { TENANT_HEADER } from "../../src/contracts/runner.ts";
import { writeDemoModel } from "../demo-model/index.ts";
import { freePort, type RunnerProcess, startRunner } from "../lib/processes.ts";

const TOKEN = "bench-overload-key";
const MODEL = "demo-llama";
const WORDS = "the quick brown fox jumps over the lazy dog and ";
/** The noisy tenant's concurrent requests and their prompts: 3 × 64 is past its 144-request share. */
const NOISY_CLIENTS = 3;
const NOISY_PROMPTS = 64;
const text = (chars: number) => WORDS.repeat(Math.ceil(chars / WORDS.length)).slice(0, chars);

const headers = (tenant: string | null): Record<string, string> => ({
  authorization: `Bearer ${TOKEN}`,
  "content-type": "application/json",
  ...(tenant === null ? {} : { [TENANT_HEADER]: tenant }),
});

function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

const ms = (v: number) => (Number.isNaN(v) ? "-" : v.toFixed(1));

/** Streams a completion; returns the arrival time of each SSE event that carries text or a finish. */
async function streamTimes(
  url: string,
  body: Record<string, unknown>,
  tenant: string | null,
): Promise<number[]> {
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: headers(tenant),
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (res.status !== 200 || res.body === null)
    throw new Error(`stream answered ${res.status}: ${await res.text()}`);
  const times: number[] = [];
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of res.body) {
    const at = performance.now();
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end !== -1) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (event.startsWith("data: {")) times.push(at);
      end = buffer.indexOf("\n\n");
    }
  }
  return times;
}

const gaps = (times: number[]) => times.slice(1).map((t, i) => t - (times[i] as number));

async function withRunner<T>(
  model: string,
  args: string[],
  fn: (r: RunnerProcess) => Promise<T>,
): Promise<T> {
  const runner = await startRunner({ model, port: await freePort(), token: TOKEN, args });
  try {
    return await fn(runner);
  } finally {
    await runner.stop();
  }
}

async function promptScenario(model: string): Promise<void> {
  // a deadline far above the 5 MB prompt's tokenizing time, so the gaps are measured while it is tokenized
  await withRunner(model, ["--tokenize-deadline-ms", "120000"], async (runner) => {
    const stream = { model: MODEL, prompt: "the fox", max_tokens: 200, ignore_eos: true, temperature: 0 };
    await streamTimes(runner.url, { ...stream, max_tokens: 8 }, null); // warm-up
    const alone = gaps(await streamTimes(runner.url, stream, null));
    console.log("\n### A 5 MB and a 10 MB prompt beside a stream\n");
    console.log(
      "| case | stream gaps p50 ms | p99 ms | max ms | big prompt: status, ms | /health slowest ms |",
    );
    console.log("| --- | ---: | ---: | ---: | --- | ---: |");
    console.log(
      `| stream alone | ${ms(quantile(alone, 0.5))} | ${ms(quantile(alone, 0.99))} | ${ms(Math.max(...alone))} | - | - |`,
    );
    for (const mb of [5, 10]) {
      let healthMax = 0;
      let polling = true;
      const poll = (async () => {
        while (polling) {
          const t0 = performance.now();
          await fetch(`${runner.url}/health`, { headers: headers(null) });
          healthMax = Math.max(healthMax, performance.now() - t0);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      // built before the stream starts, so the client's own JSON work does not show as a gap
      const request = JSON.stringify({
        model: MODEL,
        messages: [{ role: "user", content: text(mb * 1_000_000) }],
        max_tokens: 1,
      });
      const streaming = streamTimes(runner.url, stream, null);
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      const big = await fetch(`${runner.url}/v1/chat/completions`, {
        method: "POST",
        headers: headers(null),
        body: request,
      });
      const bigMs = performance.now() - t0;
      const bigBody = (await big.json()) as { error?: { message: string } };
      const g = gaps(await streaming);
      polling = false;
      await poll;
      const why = bigBody.error?.message.slice(0, 60) ?? "ok";
      console.log(
        `| ${mb} MB chat prompt | ${ms(quantile(g, 0.5))} | ${ms(quantile(g, 0.99))} | ${ms(Math.max(...g))} | ${big.status} "${why}…", ${bigMs.toFixed(0)} | ${healthMax.toFixed(1)} |`,
      );
    }
  });
}

/** The quiet tenant's TTFTs over `n` sequential 5-token requests. */
async function quietTtfts(url: string, n: number, tenant: string | null): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const times = await streamTimes(
      url,
      { model: MODEL, prompt: `quiet request ${i}`, max_tokens: 5, ignore_eos: true },
      tenant,
    );
    // the first event is the first token's chunk
    out.push((times[0] as number) - t0);
  }
  return out;
}

/** One runner per case: named tenants at each prefill budget, then one unnamed group at the first. */
async function tenantsScenario(
  model: string,
  quietRequests: number,
  budgets: number[],
  unnamed: boolean,
): Promise<void> {
  console.log("\n### A noisy tenant flooding one runner, a quiet tenant's 5-token requests\n");
  console.log(
    "| tenants | quiet TTFT unloaded p50 / p95 ms | loaded p50 / p95 ms | p95 loaded / unloaded | noisy tokens/s | noisy 429s |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  const cases = [
    ...budgets.map((budget) => ({ named: true, budget })),
    ...(unnamed ? [{ named: false, budget: budgets[0] as number }] : []),
  ];
  for (const { named, budget } of cases) {
    await withRunner(model, ["--max-prefill-tokens", String(budget)], async (runner) => {
      const quiet = named ? "quiet" : null;
      const noisy = named ? "noisy" : null;
      await quietTtfts(runner.url, 3, quiet); // warm-up
      const unloaded = await quietTtfts(runner.url, quietRequests, quiet);
      let flooding = true;
      let noisyTokens = 0;
      let refused = 0;
      const floodStart = performance.now();
      // NOISY_CLIENTS requests of NOISY_PROMPTS prompts each in flight: more than the tenant's share of the
      // queue holds, so some are refused (429) and retried after the runner's retry-after
      const flood = Promise.all(
        Array.from({ length: NOISY_CLIENTS }, async () => {
          while (flooding) {
            const res = await fetch(`${runner.url}/v1/completions`, {
              method: "POST",
              headers: headers(noisy),
              body: JSON.stringify({
                model: MODEL,
                prompt: Array.from(
                  { length: NOISY_PROMPTS },
                  (_, i) => `noisy prompt number ${i} about the fox`,
                ),
                max_tokens: 16,
                ignore_eos: true,
              }),
            });
            const body = (await res.json()) as { usage?: { completion_tokens: number } };
            if (res.status === 429) {
              refused++;
              const wait = Number(res.headers.get("retry-after") ?? "1");
              await new Promise((r) => setTimeout(r, wait * 1000));
            } else if (res.status !== 200) {
              throw new Error(`noisy request answered ${res.status}: ${JSON.stringify(body)}`);
            }
            noisyTokens += body.usage?.completion_tokens ?? 0;
          }
        }),
      );
      // let the flood fill the batch first
      await new Promise((r) => setTimeout(r, 1500));
      const loaded = await quietTtfts(runner.url, quietRequests, quiet);
      flooding = false;
      await flood;
      const rate = noisyTokens / ((performance.now() - floodStart) / 1000);
      const u95 = quantile(unloaded, 0.95);
      const l95 = quantile(loaded, 0.95);
      console.log(
        `| ${named ? "named (fair: 16 of 32 rows, 128 of 256 queue places per tenant)" : "unnamed (one group: arrival order)"}, --max-prefill-tokens ${budget} | ${ms(quantile(unloaded, 0.5))} / ${ms(u95)} | ${ms(quantile(loaded, 0.5))} / ${ms(l95)} | ${(l95 / u95).toFixed(2)}x | ${rate.toFixed(0)} | ${refused} |`,
      );
    });
  }
}

const command = defineCommand({
  meta: { name: "bench:overload", description: "the runner beside a huge prompt and a noisy tenant" },
  args: {
    scenario: { type: "string", default: "both", description: "prompt, tenants or both" },
    "quiet-requests": { type: "string", default: "30", description: "quiet tenant requests per phase" },
    "prefill-tokens": {
      type: "string",
      default: "512,64",
      description: "the runner's --max-prefill-tokens for each named case, comma-separated",
    },
    unnamed: {
      type: "boolean",
      default: true,
      description: "also the unnamed case (one group in arrival order; --no-unnamed leaves it out)",
    },
  },
  async run({ args }) {
    if (!["prompt", "tenants", "both"].includes(args.scenario)) {
      console.error(
        `bench:overload: --scenario must be one of prompt, tenants, both; got ${JSON.stringify(args.scenario)}`,
      );
      process.exit(2);
    }
    const quietRequests = Number(args["quiet-requests"]);
    if (!Number.isInteger(quietRequests) || quietRequests < 1) {
      console.error(
        `bench:overload: --quiet-requests must be an integer >= 1; got ${JSON.stringify(args["quiet-requests"])}`,
      );
      process.exit(2);
    }
    const budgets = String(args["prefill-tokens"]).split(",").map(Number);
    if (budgets.some((b) => !Number.isInteger(b) || b < 1)) {
      console.error(
        `bench:overload: --prefill-tokens must be integers >= 1, comma-separated; got ${JSON.stringify(args["prefill-tokens"])}`,
      );
      process.exit(2);
    }
    const root = await mkdtemp(join(tmpdir(), "lora-edge-bench-overload-"));
    try {
      const model = join(root, MODEL);
      await writeDemoModel({ out: model, seed: 0 });
      if (args.scenario !== "tenants") await promptScenario(model);
      if (args.scenario !== "prompt") await tenantsScenario(model, quietRequests, budgets, args.unnamed);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  },
});

void runMain(command);
