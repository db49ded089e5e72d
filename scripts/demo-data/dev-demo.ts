// The demo of `npm start`: on first start, train the two demo adapters (trainDemo; reused from the data
// folder afterwards), serve their warmed base, publish support-classify (its first epoch as version 1 under
// prod, the full run as version 2) and support-reply, and run the demo experiment between the two
// support-classify versions on the route support-triage. Every step skips what is already there.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createEdgeClient, EdgeError } from "../../cli/edge-client.ts";
import { createExperimentClient } from "../../cli/experiment-client.ts";
import { sha256File } from "../../gpu-runner/engine/model/peft-dir.ts";
import { createAliasClient } from "../../gpu-runner/training/program/aliases.ts";
import { CANARY_ALIAS, describeCanary, startCanary } from "../../gpu-runner/training/program/canary.ts";
import { describe, metricsOf, publishTrained } from "../../gpu-runner/training/program/publish.ts";
import type { TrainReport } from "../../gpu-runner/training/program/report.ts";
import { PEFT_WEIGHTS_FILE as WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { EdgeAdmin, type Published } from "../lib/dev-setup.ts";
import { SYSTEM_CLASSIFY } from "./tickets.ts";
import { DEMO_RECORD, type DemoResult, trainDemo } from "./train-demo.ts";

export const DEMO_ROUTE = "support-triage";
const CLASSIFY = "support-classify";
const quiet = { step: () => undefined, event: () => undefined, stop: () => undefined };

/** Trains the demo on first start (or reuses it); returns the base to serve and the adapters. */
export async function prepareDemo(dataDir: string, modelDir: string): Promise<DemoResult> {
  const started = performance.now();
  if (!existsSync(join(dataDir, "demo", DEMO_RECORD)))
    console.log(
      "demo: training support-classify and support-reply (first start only; about a minute on 2 cores)",
    );
  const demo = await trainDemo({
    model: modelDir,
    out: join(dataDir, "demo"),
    seed: 7,
    threads: 2,
    rows: 400,
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
  const trained = (name: keyof DemoResult["adapters"], alias?: string): Release => {
    const { dir, report } = demo.adapters[name];
    return {
      name,
      dir,
      description: describe(report),
      metrics: metricsOf(report),
      ...(alias ? { alias } : {}),
    };
  };
  const first: TrainReport = demo.adapters[CLASSIFY].report;
  return [
    {
      name: CLASSIFY,
      dir: demo.classifyFirstEpoch,
      alias: "prod",
      description: `demo: ${CLASSIFY} after its first epoch (${Math.round(first.steps / 2)} of ${first.steps} steps)`,
      metrics: {},
    },
    trained(CLASSIFY),
    trained("support-reply", "prod"),
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

/** Publishes what is missing and starts the demo experiment; returns what was published and lines to print. */
export async function publishDemo(
  edgeUrl: string,
  key: string,
  base: string,
  demo: DemoResult,
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
    `Demo experiment: route ${DEMO_ROUTE}, ${CLASSIFY} after 1 epoch (control) vs 2 epochs (canary)`,
  ];
  if (!(await routeExists(edgeUrl, key))) {
    const aliases = createAliasClient(target);
    const before = await aliases.aliases(CLASSIFY);
    const outcome = await startCanary(
      { aliases, experiments: createExperimentClient(target) },
      {
        route: DEMO_ROUTE,
        name: CLASSIFY,
        version: versions[1] as number,
        basisPoints: 5000,
        champion: `${CLASSIFY}@prod`,
        previousCanary: before[CANARY_ALIAS] ?? null,
      },
    );
    lines.push(...describeCanary(outcome, CLASSIFY, versions[1] as number));
  }
  const body = JSON.stringify({
    model: DEMO_ROUTE,
    user: "alice",
    messages: [
      { role: "system", content: SYSTEM_CLASSIFY },
      { role: "user", content: "My package 4411 has not arrived yet." },
    ],
    max_tokens: 12,
  });
  lines.push(
    `  curl -si ${edgeUrl}/v1/chat/completions -H "authorization: Bearer $LORA_EDGE_KEY" -H 'content-type: application/json' -d '${body}' | grep -iE '^x-(variant|adapter)|content'`,
    `  EDGE_URL=${edgeUrl} EDGE_TOKEN=$LORA_EDGE_KEY npm run experiment -- show ${DEMO_ROUTE}`,
    "",
  );
  return { published, lines };
}
