// A tenant's share of one runner (gpu-runner/serving/scheduler.ts), on a real runner process: a tenant holds
// at most --max-batch-per-tenant running plus --max-queue-per-tenant waiting requests; past that it gets the
// runner's 429 (queue_full, with retry-after) while another tenant's request is still admitted. Requests that
// name no tenant are one group with the same share, so direct callers cannot take the runner either. Greedy
// outputs do not depend on what else the runner serves. These tests check answers and the order of events,
// never times (docs/conventions.md#tests).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../gpu-runner/serving/config.ts";
import { freePort, type RunnerProcess, startRunner } from "../../scripts/lib/processes.ts";
import { CompletionSchema } from "../../src/contracts/openai.ts";
import { TENANT_HEADER } from "../../src/contracts/runner.ts";
import { type DemoDirs, errorOf, makeDemoDirs } from "./serve-helpers.ts";

const TOKEN = "runner-share-key";

let dirs: DemoDirs;
let runner: RunnerProcess;
beforeAll(async () => {
  dirs = await makeDemoDirs();
  runner = await startRunner({
    model: dirs.model,
    port: await freePort(),
    token: TOKEN,
    // a share of 1 running + 2 waiting per tenant; the runner holds 2 + 8 in all, room for several tenants
    args: [
      "--max-batch",
      "2",
      "--max-queue",
      "8",
      "--max-batch-per-tenant",
      "1",
      "--max-queue-per-tenant",
      "2",
      "--threads",
      "1",
    ],
  });
});
afterAll(async () => {
  await runner?.stop();
  await dirs?.cleanup();
});

function complete(tenant: string | null, prompt: string | string[], maxTokens: number): Promise<Response> {
  return fetch(`${runner.url}/v1/completions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${TOKEN}`,
      "content-type": "application/json",
      ...(tenant === null ? {} : { [TENANT_HEADER]: tenant }),
    },
    body: JSON.stringify({
      model: "demo-llama",
      prompt,
      max_tokens: maxTokens,
      ignore_eos: true,
      temperature: 0,
    }),
  });
}

async function texts(res: Response): Promise<string[]> {
  expect(res.status).toBe(200);
  const body = CompletionSchema.parse(await res.json());
  return body.choices.sort((a, b) => a.index - b.index).map((c) => c.text);
}

async function gauge(name: string): Promise<number> {
  const res = await fetch(`${runner.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1]);
}

/** Waits until the runner holds `n` sequences (running and waiting): the requests sent so far are in. */
async function untilHeld(n: number): Promise<void> {
  while ((await gauge("runner_queue_depth")) + (await gauge("runner_running_sequences")) < n) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

const NOISY = ["noisy one about the fox", "noisy two about the dog", "noisy three about the lazy fox"];

describe("a tenant's share of the queue", () => {
  it("refuses a tenant past its share with 429 and retry-after, and still admits another tenant", async () => {
    const alone = await texts(await complete("noisy", NOISY, 60));
    const quietAlone = await texts(await complete("quiet", "a quiet question", 6));

    const noisy = complete("noisy", NOISY, 60);
    await untilHeld(3);
    const over = await complete("noisy", "one more from noisy", 4);
    expect(over.status).toBe(429);
    expect(over.headers.get("retry-after")).toBe("1");
    const error = await errorOf(over);
    expect(error.code).toBe("queue_full");
    expect(error.message).toBe(
      'tenant "noisy": must hold at most 3 requests on this runner (1 running + 2 waiting, its share of the queue); holds 3; retry later',
    );
    const quiet = await complete("quiet", "a quiet question", 6);
    // the refusal changed nothing: both tenants get what they get alone
    expect(await texts(quiet)).toEqual(quietAlone);
    expect(await texts(await noisy)).toEqual(alone);
  });

  it("counts requests without a tenant as one tenant with the same share", async () => {
    const direct = complete(null, NOISY, 60);
    await untilHeld(3);
    const over = await complete(null, "one more direct", 4);
    expect(over.status).toBe(429);
    expect(over.headers.get("retry-after")).toBe("1");
    expect((await errorOf(over)).message).toBe(
      "requests without a tenant: must hold at most 3 requests on this runner (1 running + 2 waiting, its share of the queue); holds 3; retry later",
    );
    const named = await complete("quiet", "a quiet question", 6);
    expect(named.status).toBe(200);
    expect((await texts(await direct)).length).toBe(3);
    await named.body?.cancel();
  });

  it("answers a request that no share could ever hold with 400 naming the per-tenant flags", async () => {
    const res = await complete("noisy", ["a", "b", "c", "d"], 1);
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.param).toBe("prompt");
    expect(error.message).toBe(
      "prompt: must hold at most 3 prompts on this runner (one tenant's share: its --max-batch-per-tenant and --max-queue-per-tenant together); got 4",
    );
  });
});

describe("greedy outputs under load", () => {
  it("equal those served alone, for the quiet tenant and the noisy one", async () => {
    // the long one is prefilled in chunks (the scheduler's 512-token step budget), cut differently when other
    // tenants' prompts share its steps
    const quietPrompts = ["the quick brown fox jumps over ".repeat(120), "the quiet fox", "a lazy dog jumps"];
    const alone: string[][] = [];
    for (const p of quietPrompts) alone.push(await texts(await complete("quiet", p, 12)));
    const noisyAlone = await texts(await complete("noisy", NOISY, 24));

    // the noisy tenant's full share and the direct group's, while the quiet tenant's requests come one by one
    const noisy = complete("noisy", NOISY, 24);
    const direct = complete(null, NOISY, 24);
    await untilHeld(6);
    const loaded: string[][] = [];
    for (const p of quietPrompts) loaded.push(await texts(await complete("quiet", p, 12)));
    expect(loaded).toEqual(alone);
    expect(await texts(await noisy)).toEqual(noisyAlone);
    expect(await texts(await direct)).toEqual(noisyAlone);
  });
});

describe("--max-queue-per-tenant", () => {
  const parse = (...flags: string[]) => parseConfig(["--model", dirs.model, ...flags], {});
  it("defaults to half of --max-queue and takes a value up to it", () => {
    expect(parse().maxQueuePerTenant).toBe(128);
    expect(parse("--max-queue", "5").maxQueuePerTenant).toBe(3);
    expect(parse("--max-queue", "8", "--max-queue-per-tenant", "0").maxQueuePerTenant).toBe(0);
  });

  it("refuses a value past --max-queue by flag, rule and value", () => {
    expect(() => parse("--max-queue", "8", "--max-queue-per-tenant", "9")).toThrow(
      '--max-queue-per-tenant must be an integer in 0..8; got "9"',
    );
  });
});

describe("--max-prefill-tokens", () => {
  const parse = (...flags: string[]) => parseConfig(["--model", dirs.model, ...flags], {});
  it("defaults to 512 and takes a value", () => {
    expect(parse().maxPrefillTokens).toBe(512);
    expect(parse("--max-prefill-tokens", "64").maxPrefillTokens).toBe(64);
  });

  it("refuses a step that holds no token by flag, rule and value", () => {
    expect(() => parse("--max-prefill-tokens", "0")).toThrow(
      '--max-prefill-tokens must be an integer in 1..1048576; got "0"',
    );
  });
});
