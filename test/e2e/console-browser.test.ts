// The operator console in a real browser (Debian's chromium driven by playwright-core) against the pipeline
// `npm start` runs: sign in, publish by script and see the version, compare two versions, open a running
// experiment's charts, promote a variant. Each page is screenshotted into .data/screenshots/ for review and
// must pass the accessibility check (labels, contrast, keyboard focus).
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/processes.ts";
import { accessibilityProblems } from "./console-a11y.ts";
import { type Pipeline, startPipeline } from "./support/pipeline.ts";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(ROOT, ".data", "screenshots");

let p: Pipeline;
let context: BrowserContext;
let page: Page;
let profile: string;

/** What a person sees of an element (layout-aware, unlike textContent, so hidden parts stay out). */
// biome-ignore lint/performance/useDomNodeTextContent: a Playwright locator, not a DOM node.
const seen = (l: Locator): Promise<string> => l.innerText();

async function review(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage: true });
  expect(await accessibilityProblems(page), `accessibility of ${name}`).toEqual([]);
}

async function ask(user: string): Promise<string> {
  const res = await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, {
    model: "support-bot",
    user,
    messages: [{ role: "user", content: "Where is my order?" }],
    max_tokens: 4,
    temperature: 0,
  });
  expect(res.status, await res.clone().text()).toBe(200);
  await res.body?.cancel();
  return res.headers.get("x-request-id") as string;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does`,
    );
  }
  await mkdir(SHOTS, { recursive: true });
  p = await startPipeline({ runners: 1 });
  profile = await mkdtemp(join(tmpdir(), "lora-edge-chromium-"));
  // A persistent context is how playwright takes a fresh --user-data-dir of our choosing.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
});

afterAll(async () => {
  await context?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  await p?.stop();
});

describe("the operator console in headless Chromium", () => {
  it("has an accessibility check that finds missing labels, low contrast and invisible focus", async () => {
    await page.setContent(`<html><body><h1>Bad</h1>
      <input name="q">
      <p style="color:#999;background:#fff">faint text</p>
      <button style="outline:none">Go</button></body></html>`);
    const found = (await accessibilityProblems(page)).map((p) => `${p.rule} ${p.where}`);
    expect(found).toEqual(["document html", "label input[name=q]", "contrast p", 'focus button "Go"']);
  });

  it("signs in with an admin key", async () => {
    await page.goto(`${p.edgeUrl}/console`);
    await expect.poll(() => page.url()).toBe(`${p.edgeUrl}/console/sign-in`);
    await review("sign-in");
    await page.getByLabel("API key").fill(p.tenantKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${p.edgeUrl}/console/adapters`);
    expect(await page.getByText(`tenant ${p.tenant}`).isVisible()).toBe(true);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "lora_console");
    expect(session).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/console" });
  });

  it("shows a version published by the script", async () => {
    await p.publish(await p.makeAdapter("support-1", { seed: 21 }), "support", { alias: "prod" });
    await p.publish(await p.makeAdapter("support-2", { seed: 22, rank: 4 }), "support");
    await page.reload();
    await page.getByRole("link", { name: "support" }).click();
    await page.waitForURL(`${p.edgeUrl}/console/adapters/support`);
    const rows = page.locator("table").first().locator("tbody tr");
    expect(await rows.count()).toBe(2);
    expect(await seen(rows.nth(0).locator("th"))).toBe("2");
    expect(await seen(rows.nth(0))).toContain(p.base);
    expect(await seen(rows.nth(1))).toContain("prod");
    await review("adapter");
  });

  it("compares two versions side by side", async () => {
    await page.getByRole("link", { name: "Compare" }).click();
    await page.getByLabel("Prompt").fill("Where is my order?");
    await page.getByLabel("support@1", { exact: true }).check();
    await page.getByLabel("support@2", { exact: true }).check();
    await page.getByLabel("Max tokens").fill("6");
    await page.getByRole("button", { name: "Compare" }).click();
    const answers = page.locator("article.card");
    await expect.poll(() => answers.count()).toBe(2);
    for (const model of ["support@1", "support@2"]) {
      const text = await seen(page.getByRole("article", { name: `Answer of ${model}` }));
      expect(text).toContain(`Resolved to\n${model}`);
      expect(text).toMatch(/Latency\s+\d+ ms/);
      expect(text).toMatch(/Tokens\s+\d+ in, \d+ out/);
    }
    await review("compare");
  });

  it("draws a running experiment's charts", async () => {
    const created = await p.edgeCall("POST", "/admin/routes", p.tenantKey, {
      name: "support-bot",
      salt: "console",
      variants: [
        { name: "control", target: "support@prod", weight: 5000 },
        { name: "treatment", target: "support@2", weight: 5000 },
      ],
      guardrails: { maxErrorRate: 0.5, minSamples: 100 },
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await ask(`user-${i}`));
    // Exposures are written after each response (waitUntil): feedback finds its request once that landed.
    for (const [i, id] of ids.entries()) {
      await expect
        .poll(async () => {
          const fb = await p.edgeCall("POST", "/v1/feedback", p.tenantKey, {
            request_id: id,
            score: (i % 3) / 2,
          });
          return fb.status;
        })
        .toBe(200);
    }
    await page.getByRole("link", { name: "Experiments" }).click();
    await page.getByRole("link", { name: "support-bot" }).click();
    await page.waitForURL(`${p.edgeUrl}/console/experiments/support-bot`);
    expect(await page.locator("svg[role=img]").count()).toBe(4);
    expect(await page.getByText(/Sample-ratio check over 10 requests/).isVisible()).toBe(true);
    await review("experiment");
  });

  it("promotes a variant", async () => {
    await page.getByRole("combobox", { name: "Variant" }).selectOption("treatment");
    await page.getByLabel("Alias to move").fill("prod");
    await page.getByRole("button", { name: "Promote" }).click();
    await page.waitForURL(/notice=promoted/);
    expect(await seen(page.getByRole("status"))).toContain("Variant promoted");
    const adapter = (await (await p.edgeCall("GET", "/admin/adapters/support", p.tenantKey)).json()) as {
      aliases: Record<string, number>;
    };
    expect(adapter.aliases.prod).toBe(2);
    await review("promoted");
  });

  it("shows the runner holding the tenant's adapters", async () => {
    await page.getByRole("link", { name: "Runners" }).click();
    const card = page.locator("section.card").first();
    expect(await seen(card)).toMatch(/Runner 1\s+ok/);
    expect(await seen(card)).toContain("support@");
    await review("runners");
  });
});
