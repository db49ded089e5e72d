// Fair tenants on one runner (gpu-runner/serving/scheduler.ts): the edge names the tenant in
// x-lora-edge-tenant; waiting requests join round-robin across tenants and a tenant holds at most
// --max-batch-per-tenant rows, so a quiet tenant's request is served beside a noisy tenant's many prompts,
// not after them. The header counts only from a caller holding the runner's key. These tests check the order
// in which answers complete, never their times (docs/conventions.md#tests).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TENANT_HEADER } from "../../src/contracts/runner.ts";
import { errorOf, makeDemoDirs, startTestRunner, type DemoDirs, type TestRunner } from "./serve-helpers.ts";

const TOKEN = "runner-test-key";

let dirs: DemoDirs;
beforeAll(async () => {
  dirs = await makeDemoDirs();
});
afterAll(async () => {
  await dirs?.cleanup();
});

function complete(t: TestRunner, tenant: string | null, prompts: number, maxTokens: number) {
  return t.post(
    "/v1/completions",
    {
      model: "demo-llama",
      prompt: Array.from({ length: prompts }, (_, i) => `request ${i} of ${tenant}`),
      max_tokens: maxTokens,
      ignore_eos: true,
      temperature: 0,
    },
    { headers: tenant === null ? {} : { [TENANT_HEADER]: tenant } },
  );
}

/** Sends the noisy tenant's many prompts, then the quiet tenant's one, and says which answer came first. */
async function race(t: TestRunner): Promise<string[]> {
  const order: string[] = [];
  const noisy = complete(t, "noisy", 8, 12).then((res) => {
    order.push("noisy");
    return res;
  });
  // the quiet request is sent once all eight noisy prompts are in the scheduler, so it arrives after them
  const { scheduler } = t.runner.deps;
  while (scheduler.runningCount + scheduler.queueDepth < 8) await new Promise(setImmediate);
  const quiet = complete(t, "quiet", 1, 4).then((res) => {
    order.push("quiet");
    return res;
  });
  const [a, b] = await Promise.all([noisy, quiet]);
  expect(a.status).toBe(200);
  expect(b.status).toBe(200);
  return order;
}

describe("with the runner's key", () => {
  let t: TestRunner;
  beforeAll(async () => {
    t = await startTestRunner(dirs.model, {
      runnerToken: TOKEN,
      maxBatch: 2,
      maxQueue: 16,
      bounds: { maxBatchPerTenant: 1 },
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("serves a quiet tenant's request beside a noisy tenant's eight prompts, not after them", async () => {
    expect(await race(t)).toEqual(["quiet", "noisy"]);
  });

  it("admits waiting requests round-robin across tenants, not in arrival order", async () => {
    const order: string[] = [];
    const send = (tenant: string, label: string) =>
      complete(t, tenant, 1, 6).then((res) => {
        expect(res.status).toBe(200);
        order.push(label);
      });
    // one row for each tenant at most: a's three requests take turns with b's one
    await Promise.all([send("a", "a1"), send("a", "a2"), send("a", "a3"), send("b", "b1")]);
    expect(order.indexOf("b1")).toBeLessThan(order.indexOf("a2"));
  });

  it("refuses a tenant header that is not a tenant name", async () => {
    const res = await t.post(
      "/v1/completions",
      { model: "demo-llama", prompt: "hi", max_tokens: 1 },
      { headers: { [TENANT_HEADER]: "Not A Tenant!" } },
    );
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.param).toBe(TENANT_HEADER);
    expect(error.message).toMatch(/^x-lora-edge-tenant: must be a tenant name \(.*\); got "Not A Tenant!"$/);
  });
});

describe("without a key", () => {
  let t: TestRunner;
  beforeAll(async () => {
    t = await startTestRunner(dirs.model, { maxBatch: 2, maxQueue: 16, bounds: { maxBatchPerTenant: 1 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it("does not honour the header (anyone could send it): requests are served in arrival order", async () => {
    expect(await race(t)).toEqual(["noisy", "quiet"]);
  });
});
