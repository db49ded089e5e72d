// `npm run demo:traffic [-- --tickets 200]`: the demo experiment's traffic, after `npm start`. Sends held-out
// labelled tickets (never trained on) through the route support-triage, each as its own user, posts feedback
// for each answer (score 1 when it is the ticket's category, else 0), then prints the route's results: per
// variant accuracy with its 95% interval, the difference to control, SRM, guardrails, the verdict and, when
// the canary wins, the `experiment promote` command. Endpoint and key: --endpoint/--token, EDGE_URL/EDGE_TOKEN,
// else the local edge and the key `npm start` keeps in <data>/dev-credentials.json.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { defineCommand } from "citty";
import { createExperimentClient } from "../cli/experiment-client.ts";
import { runChecked } from "../cli/flags.ts";
import { reportFailure } from "../cli/report.ts";
import type { Results } from "../src/contracts/experiments.ts";
import { AppError } from "../src/errors.ts";
import { verdictOf } from "../src/experiments/verdict.ts";
import { DEMO_ROUTE } from "./demo-data/dev-demo.ts";
import { demoHeldOutTickets } from "./demo-data/tickets.ts";
import { CREDENTIALS_FILE, loadCredentials } from "./lib/dev-setup.ts";
import { type Answer, pooled, renderResults, sendTicket } from "./lib/dev-traffic.ts";

function count(flag: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max)
    throw new AppError("invalid_request", `--${flag} must be an integer in ${min}..${max}; got "${raw}"`, {
      param: flag,
    });
  return n;
}

async function keyFrom(args: { token?: string; data: string }): Promise<string> {
  const token = args.token ?? process.env.EDGE_TOKEN;
  if (token) return token;
  const data = resolve(args.data);
  if (!existsSync(join(data, CREDENTIALS_FILE)))
    throw new AppError(
      "invalid_request",
      `token: pass --token, set EDGE_TOKEN, or run npm start first (no ${join(data, CREDENTIALS_FILE)})`,
      { param: "token" },
    );
  const key = (await loadCredentials(data)).credentials.tenantKey;
  if (key === null)
    throw new AppError(
      "invalid_request",
      `token: ${CREDENTIALS_FILE} holds no tenant key yet; run npm start`,
      {
        param: "token",
      },
    );
  return key;
}

const command = defineCommand({
  meta: { name: "demo:traffic", description: "Send held-out labelled tickets through the demo experiment" },
  args: {
    tickets: { type: "string", default: "200", description: "held-out tickets to send, one user each" },
    concurrency: { type: "string", default: "4", description: "requests in flight" },
    route: { type: "string", default: DEMO_ROUTE, description: "the route to send them through" },
    data: { type: "string", default: ".data", description: "npm start's data folder (for its key)" },
    endpoint: { type: "string", description: "edge URL (or EDGE_URL; default http://127.0.0.1:8787)" },
    token: { type: "string", description: "API key with scopes infer and publish (or EDGE_TOKEN)" },
    json: {
      type: "boolean",
      default: false,
      description: 'print {"results", "verdict", "sent"} as JSON; an error as {"error": {...}}',
    },
  },
  async run({ args }) {
    try {
      const tickets = count("tickets", args.tickets, 1, 5000);
      const concurrency = count("concurrency", args.concurrency, 1, 64);
      const edgeUrl = (args.endpoint ?? process.env.EDGE_URL ?? "http://127.0.0.1:8787").replace(/\/+$/, "");
      const key = await keyFrom(args);
      const experiments = createExperimentClient({ endpoint: edgeUrl, token: key });
      const before = await experiments.show(args.route);
      if (before.status !== "running") {
        throw new AppError(
          "conflict",
          `route ${args.route}: is ${before.status}${before.winner ? ` (winner ${before.winner})` : ""}, so it splits no traffic to compare; ask its model directly, or start another experiment with npm run experiment -- create`,
          { param: "route" },
        );
      }
      const say = (line: string) => {
        if (!args.json) console.log(line);
      };
      const run = randomBytes(3).toString("hex");
      const held = demoHeldOutTickets(tickets);
      say(
        `demo:traffic: ${held.length} held-out tickets through route ${args.route}, one user each (traffic-${run}-N); feedback 1 when the answer is the ticket's category, else 0`,
      );
      const started = performance.now();
      let done = 0;
      const answers: Answer[] = await pooled(held, concurrency, async (ticket, i) => {
        const a = await sendTicket({ edgeUrl, key, route: args.route }, ticket, `traffic-${run}-${i}`);
        done += 1;
        if (done % 50 === 0 || done === held.length) say(`  ${done}/${held.length} answered`);
        return a;
      });
      const seconds = (performance.now() - started) / 1000;
      const failed = answers.filter((a) => a.status !== 200);
      const unrecorded = answers.filter((a) => a.status === 200 && !a.recorded);
      say(
        `  ${answers.length - failed.length} answers in ${seconds.toFixed(1)} s, ${failed.length} failed${unrecorded.length > 0 ? `, ${unrecorded.length} without feedback (no exposure yet)` : ""}`,
      );
      for (const a of failed.slice(0, 3)) say(`  failed (${a.status}): ${a.text}`);
      const adapters = new Map<string, Set<string>>();
      for (const a of answers) {
        if (a.variant === null || a.adapter === null) continue;
        adapters.set(a.variant, (adapters.get(a.variant) ?? new Set()).add(a.adapter));
      }
      const results: Results = await experiments.results(args.route);
      const route = await experiments.show(args.route);
      const verdict = verdictOf(results);
      if (args.json) {
        console.log(JSON.stringify({ sent: answers.length, failed: failed.length, results, verdict }));
        return;
      }
      console.log("");
      console.log(`Results of ${args.route} (all its traffic so far; feedback mean = accuracy):`);
      for (const line of renderResults(route, results, verdict, adapters)) console.log(line);
      const env = `EDGE_URL=${edgeUrl} EDGE_TOKEN=$LORA_EDGE_KEY`;
      if (verdict.winner !== null) {
        console.log("");
        console.log(
          `Promote the winner (moves its adapter's prod alias to the version it serves, concludes the route):`,
        );
        console.log(
          `  ${env} npm run experiment -- promote ${args.route} --variant ${verdict.winner} --alias prod`,
        );
      } else {
        console.log("");
        console.log("No variant to promote yet: run npm run demo:traffic again for more traffic.");
      }
      console.log(`The console shows the same: ${edgeUrl}/console/experiments/${args.route}`);
    } catch (error) {
      reportFailure(error, args.json);
    }
  },
});

await runChecked(command);
