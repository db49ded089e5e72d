// `npm run usage` against the pipeline `npm start` runs (real runner on the demo model, real wrangler dev
// with local D1, R2 and the tenants' meters): the tokens it reports are the ones the real runner put in its
// answers, streamed or not, as a table, JSON and CSV; flag mistakes exit 2 and name the flag.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageReportSchema } from "../../src/contracts/usage.ts";
import { ROOT } from "../../scripts/lib/processes.ts";
import { runScript, type ScriptRun } from "../helpers/run-script.ts";
import { type Pipeline, sseEvents, startPipeline } from "./support/pipeline.ts";

let p: Pipeline;

function usage(args: string[], token: string): Promise<ScriptRun> {
  return runScript(`${ROOT}/scripts/usage.ts`, args, {
    env: { ...process.env, EDGE_URL: p.edgeUrl, EDGE_TOKEN: token },
    timeoutMs: 60_000,
  });
}

const runnerUsage: { prompt: number; completion: number }[] = [];

beforeAll(async () => {
  p = await startPipeline({ runners: 1 });
  await p.publish(await p.makeAdapter("support-1", { seed: 31 }), "support", { alias: "prod" });
  const ask = (model: string, extra: Record<string, unknown>) =>
    p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, {
      model,
      messages: [{ role: "user", content: "Where is my order?" }],
      max_tokens: 5,
      temperature: 0,
      ...extra,
    });
  for (const model of ["support@prod", p.base]) {
    const plain = await ask(model, {});
    const body = (await plain.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    expect(plain.status).toBe(200);
    runnerUsage.push({ prompt: body.usage.prompt_tokens, completion: body.usage.completion_tokens });
  }
  // A stream that asks for usage: the runner's final chunk carries its counts.
  const streamed = await ask("support@prod", { stream: true, stream_options: { include_usage: true } });
  const events = sseEvents(await streamed.text())
    .filter((e) => e !== "[DONE]")
    .map((e) => JSON.parse(e) as { usage?: { prompt_tokens: number; completion_tokens: number } | null });
  const final = events.at(-1)?.usage;
  if (!final) throw new Error("the stream's final chunk had no usage");
  runnerUsage.push({ prompt: final.prompt_tokens, completion: final.completion_tokens });
});
afterAll(async () => {
  await p?.stop();
});

describe("npm run usage", () => {
  it("reports, as JSON, the tokens the runner counted, per adapter", async () => {
    const out = await usage(["--json", "--group-by", "adapter"], p.tenantKey);
    expect(out.code, out.stderr).toBe(0);
    const report = UsageReportSchema.parse(JSON.parse(out.stdout));
    const byAdapter = new Map(report.data.map((l) => [l.adapter, l]));
    const adapterUsage = [runnerUsage[0], runnerUsage[2]] as { prompt: number; completion: number }[];
    expect(byAdapter.get("support@1")).toMatchObject({
      requests: 2,
      promptTokens: adapterUsage.reduce((n, u) => n + u.prompt, 0),
      completionTokens: adapterUsage.reduce((n, u) => n + u.completion, 0),
    });
    expect(byAdapter.get(p.base)).toMatchObject({
      requests: 1,
      promptTokens: runnerUsage[1]?.prompt,
      completionTokens: runnerUsage[1]?.completion,
    });
  });

  it("prints CSV with a header row and a table by day", async () => {
    const csv = await usage(["--csv", "--group-by", "day"], p.tenantKey);
    expect(csv.code, csv.stderr).toBe(0);
    const [header, ...rows] = csv.stdout.trimEnd().split("\n");
    expect(header).toBe(
      "tenant,day,shadow,requests,errors,cancelled,cold_loads,prompt_tokens,completion_tokens,total_tokens,mean_latency_ms",
    );
    const total = runnerUsage.reduce((n, u) => n + u.prompt + u.completion, 0);
    expect(rows).toHaveLength(1);
    const cells = (rows[0] as string).split(",");
    expect(cells.slice(0, 4)).toEqual([p.tenant, new Date().toISOString().slice(0, 10), "false", "3"]);
    expect(Number(cells[9])).toBe(total);

    const text = await usage(["--group-by", "key"], p.tenantKey);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${total} tokens`);
  });

  it("lets the operator read across tenants, and refuses flag mistakes with exit 2", async () => {
    const all = await usage(["--json"], p.adminToken);
    expect(all.code, all.stderr).toBe(0);
    expect(UsageReportSchema.parse(JSON.parse(all.stdout)).data.some((l) => l.tenant === p.tenant)).toBe(
      true,
    );

    const bad = await usage(["--group-by", "model"], p.tenantKey);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--group-by");
    const both = await usage(["--json", "--csv"], p.tenantKey);
    expect(both.code).toBe(2);
    const typo = await usage(["--form", "2026-01-01"], p.tenantKey);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("--from");
    const refused = await usage(["--tenant", "someone-else"], p.tenantKey);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("tenant");
  });
});
