// The console's usage page: the session's tenant's usage per adapter (shadows on their own line), one chart
// per adapter, its limits and the month's tokens against its budget; another tenant's usage never shows.
import { describe, expect, it } from "vitest";
import {
  ADMIN,
  adapterFiles,
  BASE,
  call,
  callOpen,
  demoBase,
  json,
  newTenant,
  publish,
} from "./support/edge.ts";
import { chat } from "./support/experiment.ts";
import { page, signedIn, textOf, visit } from "./support/console.ts";
import { scriptedRunner } from "./support/usage.ts";

async function infer(key: string, model: string) {
  const { res, settled } = await callOpen("POST", "/v1/chat/completions", { token: key, json: chat(model) });
  await res.text();
  await settled();
}

describe("console usage page", () => {
  it("shows each adapter's tokens in a table and a chart, and the budget used this month", async () => {
    const spec = await demoBase();
    const { tenant, key } = await newTenant();
    await publish(key, "faq", adapterFiles(spec, { seed: 1 }));
    await publish(key, "billing", adapterFiles(spec, { seed: 2 }));
    await json(
      await call("PATCH", `/admin/tenants/${tenant}`, {
        token: ADMIN,
        json: { monthlyTokenBudget: 1000, limits: { requestsPerMinute: 100 } },
      }),
      200,
    );
    scriptedRunner({ promptTokens: 5, pieces: ["a", "b", "c"] });
    await infer(key, "faq");
    await infer(key, "faq");
    await infer(key, "billing");
    const other = await newTenant();
    await infer(other.key, BASE);

    const b = await signedIn(key);
    const { html } = await page(b, "/console/usage?range=24h");
    const text = textOf(html);
    expect(text).toContain("faq@1 live 2 0 10 6");
    expect(text).toContain("billing@1 live 1 0 5 3");
    expect(text).not.toContain(BASE);
    expect(text).toContain("Tokens this month (UTC) 24 of 1,000 (2.4%)");
    expect(text).toContain("100 requests per minute");
    // One chart per adapter, each with a title and its numbers under "Data".
    expect(html.match(/<svg[^>]*role="img"/g)?.length).toBe(2);
    expect(html).toContain("<title>faq@1</title>");
    expect(html).toContain("<title>billing@1</title>");
    expect(html).toContain('aria-current="page">Usage</a>');

    expect((await visit(b, "/console/usage?range=1y")).status).toBe(400);
    expect((await visit(await signedIn(other.key), "/console/usage?range=7d")).status).toBe(200);
  });
});
