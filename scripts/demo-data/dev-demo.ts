// The demo of `npm start`: on first start, train the demo adapters (trainDemo; reused from the data folder
// afterwards), serve their warmed base, publish support-classify (its launch version, which never learnt the
// "feature" category, as version 1 under prod; the retrained one with all five as version 2) and
// support-reply, and run the demo experiment between the two support-classify versions on the route
// support-triage, with guardrails. Every step skips what is already there.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createEdgeClient, EdgeError } from "../../cli/edge-client.ts";
import { createExperimentClient } from "../../cli/experiment-client.ts";
import { sha256File } from "../../gpu-runner/engine/model/peft-dir.ts";
import { createAliasClient } from "../../gpu-runner/training/program/aliases.ts";
import { CANARY_ALIAS, CHAMPION_ALIAS } from "../../gpu-runner/training/program/canary.ts";
import { describe, metricsOf, publishTrained } from "../../gpu-runner/training/program/publish.ts";
import type { Guardrails } from "../../src/contracts/experiments.ts";
import { PEFT_WEIGHTS_FILE as WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { EdgeAdmin, type Published } from "../lib/dev-setup.ts";
import { DEMO_ROWS, DEMO_SEED, LATE_CATEGORY, SYSTEM_CLASSIFY, SYSTEM_REPLY } from "./tickets.ts";
import { DEMO_RECORD, type DemoResult, type TrainedAdapter, trainDemo } from "./train-demo.ts";

export const DEMO_ROUTE = "support-triage";
export const DEMO_ADAPTER = "support-classify";
const CLASSIFY = DEMO_ADAPTER;
/** The demo route's guardrails: a variant failing more than 5% of requests after 20 is cut to control. */
export const DEMO_GUARDRAILS: Guardrails = { maxErrorRate: 0.05, maxP95LatencyMs: 10_000, minSamples: 20 };
const quiet = { step: () => undefined, event: () => undefined, stop: () => undefined };

/** Trains the demo on first start (or reuses it); returns the base to serve and the adapters. */
export async function prepareDemo(dataDir: string, modelDir: string): Promise<DemoResult> {
  const started = performance.now();
  if (!existsSync(join(dataDir, "demo", DEMO_RECORD)))
    console.log(
      "demo: training support-classify (two versions) and support-reply (first start only; 1–3 minutes on 2 cores)",
    );
  const demo = await trainDemo({
    model: modelDir,
    out: join(dataDir, "demo"),
    seed: DEMO_SEED,
    threads: 2,
    rows: DEMO_ROWS,
    sink: quiet,
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `demo: ${demo.trained ? "trained" : "reused"} the demo adapters (${seconds} s); base ${demo.base}`,
  );
  return demo;
}

interface Release {
  name: string;
  dir: string;
  alias?: string;
  description: string;
  metrics: Record<string, number>;
}

function releases(demo: DemoResult): Release[] {
  const trained = ({ dir, report }: TrainedAdapter, name: string, description: string, alias?: string) => ({
    name,
    dir,
    description: `${description}; ${describe(report)}`,
    metrics: metricsOf(report),
    ...(alias ? { alias } : {}),
  });
  return [
    trained(
      demo.classifyLaunch,
      CLASSIFY,
      `demo: the launch version, trained on ${demo.classifyLaunch.report.data.trainRows} tickets before the "${LATE_CATEGORY}" category existed`,
      CHAMPION_ALIAS,
    ),
    trained(
      demo.adapters[CLASSIFY],
      CLASSIFY,
      `demo: retrained on ${demo.adapters[CLASSIFY].report.data.trainRows} tickets with all five categories`,
    ),
    trained(demo.adapters["support-reply"], "support-reply", "demo: Nimbus reply template", CHAMPION_ALIAS),
  ];
}

/** The version holding these weights, or null. */
async function versionWithWeights(admin: EdgeAdmin, key: string, name: string, sha: string) {
  const res = await admin.call("GET", `/admin/adapters/${name}`, key);
  if (res.status === 404) return null;
  const body = (await admin.expect(res, [200], `adapter ${name}`)) as {
    versions: { version: number; weightsSha256: string }[];
  };
  return body.versions.find((v) => v.weightsSha256 === sha)?.version ?? null;
}

async function routeExists(edgeUrl: string, key: string): Promise<boolean> {
  try {
    await createExperimentClient({ endpoint: edgeUrl, token: key }).show(DEMO_ROUTE);
    return true;
  } catch (error) {
    if (error instanceof EdgeError && error.status === 404) return false;
    throw error;
  }
}

/** A newcomer's first question to the demo: a ticket's category, from support-classify@prod. */
export const DEMO_TICKET = "My package 4411 has not arrived yet. Thanks! Ana";
export const DEMO_ASK = {
  model: `${DEMO_ADAPTER}@prod`,
  messages: [
    { role: "system" as const, content: SYSTEM_CLASSIFY },
    { role: "user" as const, content: DEMO_TICKET },
  ],
  maxTokens: 12,
};

/** The flags `npm run demo:traffic` needs to find this edge and its key, none for npm start's defaults. */
function trafficFlags(edgeUrl: string, dataDir: string): string {
  const flags = [
    ...(resolve(dataDir) === resolve(".data") ? [] : ["--data", dataDir]),
    ...(edgeUrl === "http://127.0.0.1:8787" ? [] : ["--endpoint", edgeUrl]),
  ];
  return flags.length === 0 ? "" : ` -- ${flags.join(" ")}`;
}

/** Publishes what is missing and starts the demo experiment; returns what was published and lines to print. */
export async function publishDemo(
  edgeUrl: string,
  key: string,
  base: string,
  demo: DemoResult,
  dataDir: string,
): Promise<{ published: Published[]; lines: string[] }> {
  const target = { endpoint: edgeUrl, token: key };
  const admin = new EdgeAdmin(edgeUrl);
  const edge = createEdgeClient(target);
  const published: Published[] = [];
  const versions: number[] = [];
  for (const r of releases(demo)) {
    const sha = await sha256File(join(r.dir, WEIGHTS_FILE));
    const existing = await versionWithWeights(admin, key, r.name, sha);
    if (existing !== null) {
      versions.push(existing);
      if (r.name !== CLASSIFY || versions.length > 1)
        published.push({ name: r.name, version: null, fresh: false });
      continue;
    }
    const v = await publishTrained(edge, r.dir, { ...r, base });
    versions.push(v.version);
    if (r.name !== CLASSIFY || versions.length > 1)
      published.push({ name: r.name, version: v.version, fresh: true });
  }
  const lines = [
    "",
    `Demo experiment: route ${DEMO_ROUTE}, ${CLASSIFY} as launched (control) vs retrained with "${LATE_CATEGORY}" (canary)`,
  ];
  if (!(await routeExists(edgeUrl, key))) {
    const canary = versions[1] as number;
    const aliases = createAliasClient(target);
    const before = await aliases.aliases(CLASSIFY);
    if (before[CANARY_ALIAS] !== canary)
      await aliases.move(CLASSIFY, CANARY_ALIAS, canary, before[CANARY_ALIAS] ?? null);
    const route = await createExperimentClient(target).create({
      name: DEMO_ROUTE,
      control: "control",
      variants: [
        { name: "control", target: `${CLASSIFY}@${CHAMPION_ALIAS}`, weight: 5000 },
        { name: "canary", target: `${CLASSIFY}@${CANARY_ALIAS}`, weight: 5000 },
      ],
      guardrails: DEMO_GUARDRAILS,
      description: `the demo: ${CLASSIFY}@${versions[0]} (launch) against @${canary} (all five categories)`,
    });
    lines.push(
      `  created route ${route.name}: control ${CLASSIFY}@prod (= @${versions[0]}) 50%, canary ${CLASSIFY}@canary (= @${canary}) 50%`,
    );
  }
  const chat = (model: string, system: string, ticket: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      model,
      ...extra,
      messages: [
        { role: "system", content: system },
        { role: "user", content: ticket },
      ],
      max_tokens: model === "support-reply@prod" ? 160 : 12,
    });
  const curl = (body: string) =>
    `curl -s${body.includes(DEMO_ROUTE) ? "i" : ""} ${edgeUrl}/v1/chat/completions -H "authorization: Bearer $LORA_EDGE_KEY" -H 'content-type: application/json' -d '${body}'`;
  const ticket = DEMO_TICKET;
  lines.push(
    "  Ask prod (the launch version) for a ticket's category, and support-reply for the reply:",
    `  ${curl(chat(`${CLASSIFY}@prod`, SYSTEM_CLASSIFY, ticket))}`,
    `  ${curl(chat("support-reply@prod", SYSTEM_REPLY, ticket))}`,
    "  The route splits users 50/50 between the versions (x-variant, x-adapter say which answered):",
    `  ${curl(chat(DEMO_ROUTE, SYSTEM_CLASSIFY, ticket, { user: "alice" }))} | grep -iE '^x-(variant|adapter)|content'`,
    "  Send held-out labelled tickets as distinct users with feedback, and read the verdict:",
    `  npm run demo:traffic${trafficFlags(edgeUrl, dataDir)}`,
    `  (the console shows the same: ${edgeUrl}/console/experiments/${DEMO_ROUTE}, signed in with the tenant key)`,
    "",
  );
  return { published, lines };
}
