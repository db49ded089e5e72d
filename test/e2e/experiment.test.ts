// A small experiment through the pipeline `npm start` runs (real runner on the demo model, real wrangler dev
// with local D1 and R2), managed with the real `npm run experiment` script: create a route between two
// published versions, send traffic with sticky users, report feedback, read the results, promote.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompareResponseSchema, type Results, type Route } from "../../src/contracts/experiments.ts";
import { ROOT, runToEnd } from "../../scripts/lib/processes.ts";
import { runScript, type ScriptRun } from "../helpers/run-script.ts";
import { type Pipeline, startPipeline } from "./support/pipeline.ts";

let p: Pipeline;

async function experiment(...args: string[]): Promise<string> {
  const out = await runToEnd(
    `experiment ${args[0]}`,
    process.execPath,
    [`${ROOT}/scripts/experiment.ts`, ...args],
    {
      EDGE_URL: p.edgeUrl,
      EDGE_TOKEN: p.tenantKey,
    },
  );
  const json = out.split("\n").find((l) => l.startsWith("{") || l.startsWith("["));
  if (json === undefined) throw new Error(`experiment ${args[0]} printed no JSON:\n${out}`);
  return json;
}

/** The script to its end, whatever its exit code, in its own process group. */
function experimentRun(...args: string[]): Promise<ScriptRun> {
  return runScript(`${ROOT}/scripts/experiment.ts`, args, {
    env: { ...process.env, EDGE_URL: p.edgeUrl, EDGE_TOKEN: p.tenantKey },
  });
}

async function ask(
  user: string,
): Promise<{ variant: string | null; adapter: string | null; id: string; text: string }> {
  const res = await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, {
    model: "support-bot",
    user,
    messages: [{ role: "user", content: "Where is my order?" }],
    max_tokens: 6,
    temperature: 0,
  });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return {
    variant: res.headers.get("x-variant"),
    adapter: res.headers.get("x-adapter"),
    id: res.headers.get("x-request-id") as string,
    text,
  };
}

beforeAll(async () => {
  p = await startPipeline({ runners: 1 });
  await p.publish(await p.makeAdapter("support-1", { seed: 21 }), "support", { alias: "prod" });
  await p.publish(await p.makeAdapter("support-2", { seed: 22 }), "support");
});
afterAll(async () => {
  await p?.stop();
});

describe("an experiment through the pipeline", () => {
  it("compare exits 0 when every model answers, 1 naming each model that failed", async () => {
    const compare = (models: string, ...more: string[]) =>
      experimentRun(
        "compare",
        "--models",
        models,
        "--prompt",
        "Where is my order?",
        "--max-tokens",
        "2",
        ...more,
      );
    const ok = await compare("support@1,support@2");
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("== support@1");
    const bad = await compare("support@1,nope@9,support@99");
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain("== support@1");
    expect(bad.stderr).toMatch(/^error: nope@9 failed: 404 /m);
    expect(bad.stderr).toMatch(/^error: support@99 failed: 404 /m);
    expect(bad.stderr).not.toContain("support@1 failed");
    const json = await compare("support@1,nope@9", "--json");
    expect(json.code).toBe(1);
    const out = CompareResponseSchema.parse(JSON.parse(json.stdout));
    expect(out.results.map((r) => [r.model, r.status])).toEqual([
      ["support@1", 200],
      ["nope@9", 404],
    ]);
  });

  it("splits sticky users between two versions, records exposures and feedback, and promotes the winner", async () => {
    const created = JSON.parse(
      await experiment(
        "create",
        "support-bot",
        "--variants",
        "control=support@prod:50%,treatment=support@2:50%",
        "--salt",
        "e2e",
        "--json",
      ),
    ) as Route;
    expect(created.config.variants.map((v) => [v.name, v.weight])).toEqual([
      ["control", 5000],
      ["treatment", 5000],
    ]);

    const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
    const first = new Map<string, string | null>();
    const ids: Record<string, string[]> = { control: [], treatment: [] };
    for (const user of users) {
      const a = await ask(user);
      expect(a.adapter).toBe(a.variant === "control" ? "support@1" : "support@2");
      first.set(user, a.variant);
      ids[a.variant as string]?.push(a.id);
    }
    for (const user of users) expect((await ask(user)).variant).toBe(first.get(user));
    expect(ids.control?.length).toBeGreaterThan(0);
    expect(ids.treatment?.length).toBeGreaterThan(0);

    for (const id of ids.treatment ?? []) {
      const res = await p.edgeCall("POST", "/v1/feedback", p.tenantKey, { request_id: id, score: 1 });
      expect(res.status, await res.text()).toBe(200);
    }

    // Exposures are written after each response; give the last batch a moment to land.
    let results: Results | undefined;
    for (let i = 0; i < 50; i++) {
      results = (JSON.parse(await experiment("show", "support-bot", "--json")) as { results: Results })
        .results;
      if (results.variants.reduce((n, v) => n + v.n, 0) === 2 * users.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const byName = new Map(results?.variants.map((v) => [v.variant, v]));
    expect(byName.get("control")?.n).toBe(2 * (ids.control?.length ?? 0));
    expect(byName.get("treatment")?.n).toBe(2 * (ids.treatment?.length ?? 0));
    expect(byName.get("treatment")?.feedback).toMatchObject({ n: ids.treatment?.length, mean: 1 });
    expect(byName.get("control")?.errorRate).toBe(0);
    expect(byName.get("control")?.latencyMs.p50).toBeGreaterThanOrEqual(0);
    expect(byName.get("treatment")?.tokens.completion).toBeGreaterThan(0);
    expect(results?.srm?.n).toBe(2 * users.length);

    const promoted = JSON.parse(
      await experiment("promote", "support-bot", "--variant", "treatment", "--alias", "prod", "--json"),
    ) as { version: number; previous: number; route: Route };
    expect([promoted.previous, promoted.version, promoted.route.status]).toEqual([1, 2, "concluded"]);
    const prod = await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, {
      model: "support@prod",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    });
    await prod.text();
    expect(prod.headers.get("x-adapter")).toBe("support@2");
  });
});
