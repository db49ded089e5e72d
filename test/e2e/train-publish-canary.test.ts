// The training runner's release path, as a user runs it: `npm run train -- ... --publish --canary 10` on the
// pipeline's base model (real runner, real wrangler dev with local D1 and R2) publishes the new version with
// its evaluation as manifest metrics and starts a canary route against the prod champion; a second run moves
// the canary to its new version and re-weighs it without moving anyone who need not move. Both runs judge the
// new version against the published prod version, downloaded from the edge.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Route } from "../../src/contracts/experiments.ts";
import { ROOT, runToEnd } from "../../scripts/lib/processes.ts";
import { classifyRow, makeTickets } from "../../scripts/demo-data/tickets.ts";
import { type Pipeline, startPipeline } from "./support/pipeline.ts";

const NAME = "ticket-bot";
const ROUTE = `${NAME}-canary`;
const SUBJECTS = Array.from({ length: 4000 }, (_, i) => `user-${i}`);

let p: Pipeline;
let data: string;
let championDir: string;

type Event = Record<string, unknown> & { event: string };

async function train(out: string, seed: number, ...extra: string[]): Promise<Event[]> {
  return await trainWith(out, seed, ["--publish", "--name", NAME, ...extra]);
}

async function trainWith(out: string, seed: number, extra: string[]): Promise<Event[]> {
  const args = [
    `${ROOT}/gpu-runner/training/main.ts`,
    ...["--base", join(p.work, "demo-llama"), "--data", data, "--out", out, "--seed", String(seed)],
    ...[
      "--epochs",
      "1",
      "--max-steps",
      "3",
      "--batch-size",
      "4",
      "--r",
      "4",
      "--lr",
      "1e-2",
      "--threads",
      "1",
    ],
    ...["--json", ...extra],
  ];
  const printed = await runToEnd("train", process.execPath, args, {
    EDGE_URL: p.edgeUrl,
    EDGE_TOKEN: p.tenantKey,
  });
  return printed
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Event);
}

const find = (events: Event[], kind: string) => {
  const e = events.find((x) => x.event === kind);
  if (e === undefined)
    throw new Error(`train printed no ${kind} event: ${JSON.stringify(events.map((x) => x.event))}`);
  return e;
};

async function json<T>(res: Response): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBeLessThan(300);
  return JSON.parse(text) as T;
}

const admin = async <T>(method: string, path: string, body?: unknown) =>
  await json<T>(await p.edgeCall(method, path, p.tenantKey, body));

async function assignments(): Promise<string[]> {
  const r = await admin<{ variants: string[] }>("POST", `/admin/routes/${ROUTE}/assignments`, {
    subjects: SUBJECTS,
  });
  return r.variants;
}

async function ask(user: string) {
  const res = await p.edgeCall("POST", "/v1/chat/completions", p.tenantKey, {
    model: ROUTE,
    user,
    messages: [{ role: "user", content: "My package has not arrived." }],
    max_tokens: 2,
    temperature: 0,
  });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return {
    experiment: res.headers.get("x-experiment"),
    variant: res.headers.get("x-variant"),
    adapter: res.headers.get("x-adapter"),
  };
}

/** Routes are cached per isolate for up to 2 s: ask until the answer reflects the change. */
async function askUntil(user: string, adapter: string) {
  let last = await ask(user);
  for (let i = 0; i < 20 && last.adapter !== adapter; i++) {
    await new Promise((r) => setTimeout(r, 250));
    last = await ask(user);
  }
  return last;
}

beforeAll(async () => {
  p = await startPipeline({ runners: 1 });
  data = join(p.work, "tickets.jsonl");
  writeFileSync(
    data,
    `${makeTickets(40, 3)
      .map((t) => JSON.stringify(classifyRow(t)))
      .join("\n")}\n`,
  );
  // The champion the canary is judged against: version 1 under prod.
  championDir = await p.makeAdapter("champion", { seed: 5 });
  await p.publish(championDir, NAME, { alias: "prod" });
});
afterAll(async () => {
  await p?.stop();
});

describe("npm run train --publish --canary", () => {
  let firstSplit: string[];

  it("publishes the trained version with its metrics and sends 10% of the route to it", async () => {
    const out = join(p.work, "trained-1");
    const events = await train(out, 1, "--canary", "10");
    const published = find(events, "published");
    expect(published.version).toBe(2);

    const report = JSON.parse(readFileSync(join(out, "training_report.json"), "utf8"));
    const v2 = await admin<{ manifest: { metrics: Record<string, number> }; aliases: string[] }>(
      "GET",
      `/admin/adapters/${NAME}/versions/2`,
    );
    expect(v2.aliases).toEqual(["canary"]);
    expect(v2.manifest.metrics.eval_loss).toBeCloseTo(report.adapter.loss, 10);
    expect(v2.manifest.metrics.champion_eval_loss).toBeCloseTo(report.champion.loss, 10);
    expect(v2.manifest.metrics.train_steps).toBe(3);

    // The champion is the published prod version, downloaded and evaluated on the same rows.
    expect(find(events, "champion")).toMatchObject({ label: `${NAME}@1`, version: 1 });
    expect(report.champion).toMatchObject({ label: `${NAME}@1`, version: 1 });
    expect(v2.manifest.metrics.champion_version).toBe(1);
    expect(readFileSync(join(out, "README.md"), "utf8")).toContain(`| champion: ${NAME}@1 |`);
    // The same figures as evaluating the published folder itself: the download is the version, whole.
    const localOut = join(p.work, "local-champion");
    const local = await trainWith(localOut, 1, ["--champion", championDir]);
    expect(find(local, "champion")).toMatchObject({ label: "champion", version: null });
    const localReport = JSON.parse(readFileSync(join(localOut, "training_report.json"), "utf8"));
    expect(report.champion.loss).toBeCloseTo(localReport.champion.loss, 10);
    expect(report.champion.exactMatch).toBe(localReport.champion.exactMatch);
    expect(report.champion.loss).not.toBeCloseTo(localReport.adapter.loss, 4);

    const canary = find(events, "canary");
    expect(canary).toMatchObject({ action: "created", route: ROUTE });
    const route = await admin<Route>("GET", `/admin/routes/${ROUTE}`);
    expect(route.status).toBe("running");
    expect(route.config.control).toBe("control");
    expect(route.config.variants.map((v) => [v.name, v.target, v.weight])).toEqual([
      ["control", `${NAME}@prod`, 9000],
      ["canary", `${NAME}@canary`, 1000],
    ]);

    firstSplit = await assignments();
    const share = firstSplit.filter((v) => v === "canary").length / SUBJECTS.length;
    expect(share).toBeGreaterThan(0.08);
    expect(share).toBeLessThan(0.12);

    // Fixed subjects through the edge: each gets the variant the split gives it, and keeps it.
    const canaryUser = SUBJECTS[firstSplit.indexOf("canary")] as string;
    const controlUser = SUBJECTS[firstSplit.indexOf("control")] as string;
    for (const user of [canaryUser, controlUser, canaryUser]) {
      const got = await ask(user);
      const variant = user === canaryUser ? "canary" : "control";
      expect(got).toEqual({
        experiment: ROUTE,
        variant,
        adapter: variant === "canary" ? `${NAME}@2` : `${NAME}@1`,
      });
    }
  });

  it("a second run moves the canary to its version and re-weighs it, keeping the subjects already on it", async () => {
    const events = await train(join(p.work, "trained-2"), 2, "--canary", "20");
    expect(find(events, "published").version).toBe(3);
    expect(find(events, "canary")).toMatchObject({ action: "updated", route: ROUTE });

    const route = await admin<Route>("GET", `/admin/routes/${ROUTE}`);
    expect(route.config.variants.map((v) => [v.name, v.target, v.weight])).toEqual([
      ["control", `${NAME}@prod`, 8000],
      ["canary", `${NAME}@canary`, 2000],
    ]);
    const now = await assignments();
    const moved = SUBJECTS.filter((_, i) => now[i] !== firstSplit[i]);
    // 10% more of the traffic joins the canary; nobody leaves it, nobody else moves.
    expect(moved.every((s) => now[SUBJECTS.indexOf(s)] === "canary")).toBe(true);
    expect(moved.length / SUBJECTS.length).toBeGreaterThan(0.08);
    expect(moved.length / SUBJECTS.length).toBeLessThan(0.12);

    const stayed = SUBJECTS[firstSplit.indexOf("canary")] as string;
    expect(await askUntil(stayed, `${NAME}@3`)).toEqual({
      experiment: ROUTE,
      variant: "canary",
      adapter: `${NAME}@3`,
    });
  });

  it("judges the first version of an adapter, which has no prod yet, against the base model", async () => {
    const out = join(p.work, "fresh");
    const events = await trainWith(out, 1, ["--publish", "--name", "fresh-bot"]);
    expect(find(events, "champion")).toMatchObject({ label: `base ${p.base}`, version: null });
    expect(find(events, "published").version).toBe(1);
    const report = JSON.parse(readFileSync(join(out, "training_report.json"), "utf8"));
    expect(report.champion).toMatchObject({ label: `base ${p.base}`, version: null });
    const v1 = await admin<{ manifest: { metrics: Record<string, number> } }>(
      "GET",
      "/admin/adapters/fresh-bot/versions/1",
    );
    expect(v1.manifest.metrics.champion_version).toBeUndefined();
    expect(v1.manifest.metrics.champion_eval_loss).toBeCloseTo(report.champion.loss, 10);
  });

  it("refuses a canary without --publish before training", async () => {
    const args = [
      `${ROOT}/gpu-runner/training/main.ts`,
      "--base",
      join(p.work, "demo-llama"),
      "--data",
      data,
    ];
    await expect(
      runToEnd("train", process.execPath, [...args, "--out", join(p.work, "x"), "--canary", "10"]),
    ).rejects.toThrow(/--canary needs --publish/);
  });
});
