// The demo's whole story as the README's quick start walks it, from a clean data folder: `npm start` trains
// and publishes the demo adapters and starts the experiment; asking prod answers a ticket's category and
// support-reply answers in Nimbus's template; `npm run demo:traffic` sends held-out labelled tickets as
// distinct users with feedback and prints a verdict (the canary better at 95% confidence) with the promote
// command; running that command moves support-classify@prod to the canary's version, and asking again gets it.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExperimentClient } from "../../cli/experiment-client.ts";
import { checkReply, demoHeldOutTickets, type Ticket } from "../../scripts/demo-data/tickets.ts";
import { loadCredentials } from "../../scripts/lib/dev-setup.ts";
import { type Child, freePort, ROOT, spawnChild } from "../../scripts/lib/processes.ts";

let data: string;
let edgeUrl: string;
let key: string;
let startLog: string;
const started: Child[] = [];

/** A printed command line run in bash from the repository, with the key exported as the printout says. */
function bash(command: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", command], {
      cwd: ROOT,
      detached: true,
      env: {
        ...process.env,
        LORA_EDGE_KEY: key,
        PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}`,
      },
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.pid && process.kill(-child.pid, "SIGKILL"), 300_000);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const printed = (log: string, match: RegExp): string => {
  const line = log
    .split("\n")
    .map((l) => l.trim())
    .find((l) => match.test(l));
  if (line === undefined) throw new Error(`no line matching ${match} in:\n${log}`);
  return line;
};

async function chat(model: string, system: string, ticket: string) {
  const res = await fetch(`${edgeUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({
      model,
      user: "newcomer",
      max_tokens: 160,
      temperature: 0,
      messages: [
        { role: "system", content: system },
        { role: "user", content: ticket },
      ],
    }),
  });
  const body = (await res.json()) as { choices: { message: { content: string } }[] };
  expect(res.status).toBe(200);
  return { adapter: res.headers.get("x-adapter"), text: body.choices[0]?.message.content.trim() ?? "" };
}

beforeAll(async () => {
  data = await mkdtemp(join(tmpdir(), "lora-edge-demo-"));
  const edgePort = await freePort();
  const runnerPort = await freePort();
  const child = spawnChild("npm start", process.execPath, [
    "scripts/dev.ts",
    "--data",
    data,
    "--port",
    String(edgePort),
    "--runner-port",
    String(runnerPort),
    "--quiet",
  ]);
  started.push(child);
  // First start trains the demo: minutes on a loaded 2-core machine (figures in the README).
  const deadline = Date.now() + 900_000;
  while (!child.log().includes("demo:traffic")) {
    if (child.process.exitCode !== null) throw new Error(`npm start exited early:\n${child.log()}`);
    if (Date.now() > deadline) throw new Error(`npm start never got ready:\n${child.log()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  startLog = child.log();
  edgeUrl = `http://127.0.0.1:${edgePort}`;
  key = (await loadCredentials(data)).credentials.tenantKey as string;
}, 960_000);

afterAll(async () => {
  await Promise.all(started.map((c) => c.stop()));
  if (data) await rm(data, { recursive: true, force: true });
});

describe("the demo from a clean data folder", () => {
  it("answers a first ticket right on prod and replies in Nimbus's template", async () => {
    const ask = await bash(printed(startLog, /^curl .*support-classify@prod/));
    expect(ask.code, ask.out).toBe(0);
    expect(
      (JSON.parse(ask.out) as { choices: { message: { content: string } }[] }).choices[0]?.message.content,
    ).toBe("shipping");
    const ticket = demoHeldOutTickets(1)[0] as Ticket;
    const reply = await chat("support-reply@prod", "Reply as Nimbus Support.", ticket.text);
    expect(checkReply(ticket, reply.text), reply.text).toMatchObject({
      template: true,
      category: true,
    });
  });

  it("demo:traffic reaches the verdict, and the printed promote command moves prod to the canary", async () => {
    const traffic = await bash(printed(startLog, /^npm run demo:traffic/));
    expect(traffic.code, traffic.out).toBe(0);
    expect(traffic.out).toContain("verdict: canary is better than control at 95% confidence");
    expect(traffic.out).toMatch(/sample ratio: .* no mismatch/);
    expect(traffic.out).toMatch(/guardrails: error rate ≤ 5\.0%.*no variant cut/);

    const experiments = createExperimentClient({ endpoint: edgeUrl, token: key });
    const results = await experiments.results("support-triage");
    const byName = new Map(results.variants.map((v) => [v.variant, v]));
    const control = byName.get("control");
    const canary = byName.get("canary");
    expect((control?.feedback.n ?? 0) + (canary?.feedback.n ?? 0)).toBe(200);
    expect(canary?.diffToControl?.ci95[0]).toBeGreaterThan(0);
    // prod stays a version a newcomer can trust; the canary is better still
    expect(control?.feedback.mean).toBeGreaterThan(0.7);
    expect(canary?.feedback.mean).toBeGreaterThan(control?.feedback.mean as number);
    expect(results.srm?.alarm).toBe(false);

    const before = await chat(
      "support-classify@prod",
      "Category?",
      "Could you add a calendar view to the smart lamp?",
    );
    expect(before.adapter).toBe("support-classify@1");
    const promote = await bash(printed(traffic.out, /npm run experiment -- promote support-triage/));
    expect(promote.code, promote.out).toBe(0);
    const route = await experiments.show("support-triage");
    expect([route.status, route.winner]).toEqual(["concluded", "canary"]);
    const after = await chat(
      "support-classify@prod",
      "Category?",
      "Could you add a calendar view to the smart lamp?",
    );
    expect(after.adapter).toBe("support-classify@2");
    expect(after.text).toBe("feature");

    // a concluded route has nothing left to split: demo:traffic refuses by name and changes nothing
    const again = await bash(printed(startLog, /^npm run demo:traffic/));
    expect(again.code).toBe(1);
    expect(again.out).toContain("route support-triage: is concluded (winner canary)");
    expect((await experiments.results("support-triage")).variants.reduce((n, v) => n + v.feedback.n, 0)).toBe(
      200,
    );
  });
});
