import { beforeEach, describe, expect, it } from "vitest";
import { call, json } from "./support/edge.ts";
import { answerAs, createRoute, type Fixture, infer, twoVersions } from "./support/experiment.ts";
import { type Browser, page, signedIn, submit, textOf } from "./support/console.ts";

let f: Fixture;
let b: Browser;

beforeEach(async () => {
  f = await twoVersions();
  answerAs(f);
  b = await signedIn(f.key);
});

const split = {
  name: "bot",
  salt: "s1",
  variants: [
    { name: "control", target: "support@prod", weight: 5000 },
    { name: "treatment", target: "support@2", weight: 5000 },
  ],
  guardrails: { maxErrorRate: 0.5, minSamples: 50 },
};

async function traffic(users: number): Promise<void> {
  for (let i = 0; i < users; i++) {
    const r = await infer(f.key, "bot", { user: `user-${i}` });
    expect(r.status).toBe(200);
    const id = r.res.headers.get("x-request-id") as string;
    await json(
      await call("POST", "/v1/feedback", { token: f.key, json: { request_id: id, score: i % 2 } }),
      200,
    );
  }
}

describe("the experiment page", () => {
  it("draws shares, error rate, latency and feedback intervals as SVG, with the SRM check and guardrails", async () => {
    await createRoute(f.key, split);
    await traffic(16);
    const { html } = await page(b, "/console/experiments/bot");
    const text = textOf(html);
    for (const title of [
      "Share of live traffic over time",
      "Error rate over time",
      "Mean latency over time",
      "Feedback score means with 95% intervals",
    ]) {
      expect(text).toContain(title);
    }
    expect(html.match(/<svg [^>]*role="img"/g)?.length).toBe(4);
    expect(html).toMatch(/<path d="M[\d.]+,[\d.]+/);
    expect(text).toMatch(/Sample-ratio check over 16 requests: χ² = [\d.]+, p = [\d.e-]+\. No mismatch\./);
    expect(text).toContain("Guardrails: error rate ≤ 50.0%, judged after 50 requests per variant.");
    expect(text).toMatch(/control \(control\) support@prod 50\.0% active \d+ 0\.0%/);
    const list = textOf((await page(b, "/console/experiments")).html);
    expect(list).toContain("bot running control → support@prod, treatment → support@2");
  });

  it("promotes a variant from the page (alias moved, route concluded) and refuses a stale page", async () => {
    await createRoute(f.key, split);
    const { csrf } = await page(b, "/console/experiments/bot");
    await json(
      await call("PUT", "/admin/routes/bot/weights", {
        token: f.key,
        json: { weights: { control: 6000, treatment: 4000 } },
      }),
      200,
    );
    const stale = await submit(b, "/console/experiments/bot/promote", {
      csrf,
      routeVersion: "1",
      variant: "treatment",
      alias: "prod",
    });
    expect(stale.status).toBe(409);
    expect(textOf(await stale.text())).toContain("route bot is at version 2; this page showed version 1");

    const res = await submit(b, "/console/experiments/bot/promote", {
      csrf,
      routeVersion: "2",
      variant: "treatment",
      alias: "prod",
    });
    expect([res.status, res.headers.get("location")]).toEqual([
      303,
      "/console/experiments/bot?notice=promoted",
    ]);
    const adapter = await json<{ aliases: Record<string, number> }>(
      await call("GET", "/admin/adapters/support", { token: f.key }),
      200,
    );
    expect(adapter.aliases.prod).toBe(2);
    const after = textOf((await page(b, "/console/experiments/bot?notice=promoted")).html);
    expect(after).toContain("Variant promoted: the alias moved and the experiment is concluded.");
    expect(after).toContain("Concluded; winner treatment.");
    const history = textOf((await page(b, "/console/adapters/support")).html);
    expect(history).toMatch(/support@prod to version 2 from 1 \(promote bot\)/);
  });

  it("stops an experiment from the page", async () => {
    await createRoute(f.key, split);
    const { csrf } = await page(b, "/console/experiments/bot");
    const res = await submit(b, "/console/experiments/bot/stop", { csrf, routeVersion: "1" });
    expect(res.status).toBe(303);
    const route = await json<{ status: string; winner: string | null }>(
      await call("GET", "/admin/routes/bot", { token: f.key }),
      200,
    );
    expect([route.status, route.winner]).toEqual(["concluded", null]);
  });
});

describe("the compare page", () => {
  it("shows two versions' answers side by side with latency and tokens", async () => {
    const form = await page(b, "/console/compare");
    expect(form.html).toContain('value="support@1"');
    expect(form.html).toContain('value="support@prod"');
    const res = await submit(b, "/console/compare", {
      csrf: form.csrf,
      prompt: "Where is my order?",
      models: ["support@1", "support@2"],
      max_tokens: "8",
    });
    const html = await res.text();
    expect(res.status, html).toBe(200);
    const text = textOf(html);
    expect(text).toMatch(
      /support@1 Resolved to support@1 Latency \d+ ms Tokens 3 in, 5 out from support@1 .*support@2 Resolved to support@2 Latency \d+ ms Tokens 3 in, 5 out from support@2/,
    );
    expect(html).toContain("Where is my order?</textarea>");
  });

  it("names the field and the rule when no model is chosen", async () => {
    const form = await page(b, "/console/compare");
    const res = await submit(b, "/console/compare", { csrf: form.csrf, prompt: "hi" });
    expect(res.status).toBe(400);
    expect(textOf(await res.text())).toContain("models: must name at least one model (tick a box)");
  });
});
