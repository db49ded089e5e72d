// `npm run experiment -- create|show|list|set-weights|pause|resume|promote|stop|compare ...`: manage A/B
// routes between adapter versions at the edge. Endpoint and key: --endpoint/--token or EDGE_URL/EDGE_TOKEN.
import { defineCommand } from "citty";
import { createExperimentClient, type ExperimentClient } from "../cli/experiment-client.ts";
import { runChecked } from "../cli/flags.ts";
import { EXIT, reportFailure } from "../cli/report.ts";
import type { Results, Route } from "../src/contracts/experiments.ts";
import { AppError } from "../src/errors.ts";
import { parseNumber, parseVariants, parseWeights } from "./lib/experiment-args.ts";

const common = {
  endpoint: { type: "string", description: "edge URL (or EDGE_URL)" },
  token: { type: "string", description: "API key with scope publish (or EDGE_TOKEN)" },
  json: {
    type: "boolean",
    default: false,
    description: 'print JSON: the answer as one object, an error as {"error": {...}}',
  },
} as const;
const routeArg = { route: { type: "positional", required: true, description: "route name" } } as const;

function client(args: { endpoint?: string; token?: string }): ExperimentClient {
  const endpoint = args.endpoint ?? process.env.EDGE_URL;
  const token = args.token ?? process.env.EDGE_TOKEN;
  if (!endpoint)
    throw new AppError("invalid_request", "endpoint: pass --endpoint or set EDGE_URL", { param: "endpoint" });
  if (!token)
    throw new AppError("invalid_request", "token: pass --token or set EDGE_TOKEN", { param: "token" });
  return createExperimentClient({ endpoint, token });
}

const pct = (bp: number) => `${(bp / 100).toFixed(2)}%`;
const num = (v: number | null | undefined, digits = 3) => (v == null ? "-" : v.toFixed(digits));

function printRoute(route: Route): void {
  const c = route.config;
  console.log(
    `route ${route.name}  ${route.status}  version ${route.version}${route.winner ? `  winner ${route.winner}` : ""}`,
  );
  console.log(`  subject ${c.subject}  salt ${c.salt}  control ${c.control}`);
  if (c.guardrails) console.log(`  guardrails ${JSON.stringify(c.guardrails)}`);
  for (const v of c.variants) {
    const share = v.shadow ? `shadow ${pct(v.weight)} copied` : pct(v.weight);
    console.log(
      `  ${v.name.padEnd(16)} ${v.target.padEnd(24)} ${share}${v.cut ? `  CUT: ${v.cut.reason}` : ""}`,
    );
  }
}

function printResults(r: Results): void {
  console.log(
    "  variant          n      err%    p50ms   p95ms   tokens    feedback (95% CI)          diff vs control",
  );
  for (const v of r.variants) {
    const fb =
      v.feedback.mean === null
        ? "-"
        : `${num(v.feedback.mean)} [${num(v.feedback.ci95?.[0])}, ${num(v.feedback.ci95?.[1])}]`;
    const diff =
      v.diffToControl === null
        ? "-"
        : `${num(v.diffToControl.mean)} [${num(v.diffToControl.ci95[0])}, ${num(v.diffToControl.ci95[1])}]`;
    const err = v.errorRate === null ? "-" : (v.errorRate * 100).toFixed(1);
    console.log(
      `  ${v.variant.padEnd(16)} ${String(v.n).padEnd(6)} ${err.padEnd(7)} ${num(v.latencyMs.p50, 0).padEnd(7)} ${num(v.latencyMs.p95, 0).padEnd(7)} ${String(v.tokens.completion).padEnd(9)} ${fb.padEnd(26)} ${diff}`,
    );
  }
  if (r.srm) {
    const verdict = r.srm.alarm ? "ALARM: sample ratio mismatch" : "ok";
    console.log(
      `  SRM: chi² ${r.srm.chiSquare.toFixed(2)}, p ${r.srm.pValue.toPrecision(3)} over ${r.srm.n}: ${verdict}`,
    );
  }
}

function output(args: { json: boolean }, value: unknown, print: () => void): void {
  if (args.json) console.log(JSON.stringify(value));
  else print();
}

function action<A extends { json: boolean }>(run: (args: A) => Promise<void>) {
  return async ({ args }: { args: A }) => {
    try {
      await run(args);
    } catch (error) {
      reportFailure(error, args.json);
    }
  };
}

const create = defineCommand({
  meta: { name: "create", description: "Create a running route" },
  args: {
    ...routeArg,
    variants: { type: "string", required: true, description: "name=target:weight,... (weights sum to 100%)" },
    shadows: { type: "string", description: "name=target:share,... copies of traffic, never returned" },
    control: { type: "string", description: "the baseline variant (default: the first)" },
    subject: {
      type: "enum",
      options: ["user", "header", "api_key"],
      default: "user",
      description: "what to stick on",
    },
    salt: { type: "string", description: "hash salt (default: random)" },
    "max-error-rate": {
      type: "string",
      description: "guardrail: cut a variant above this error rate (0..1)",
    },
    "max-p95-ms": { type: "string", description: "guardrail: cut a variant above this p95 latency" },
    "min-samples": {
      type: "string",
      description: "guardrail: requests before a variant is judged (default 100)",
    },
    ...common,
  },
  run: action(async (args) => {
    const maxErrorRate = parseNumber(args["max-error-rate"], "max-error-rate", 0, 1);
    const maxP95LatencyMs = parseNumber(args["max-p95-ms"], "max-p95-ms", 0);
    const minSamples = parseNumber(args["min-samples"], "min-samples", 1);
    const guarded = maxErrorRate !== undefined || maxP95LatencyMs !== undefined;
    const route = await client(args).create({
      name: args.route,
      variants: [
        ...parseVariants(args.variants, "variants", false),
        ...parseVariants(args.shadows ?? "", "shadows", true),
      ],
      subject: args.subject as "user" | "header" | "api_key",
      ...(args.control ? { control: args.control } : {}),
      ...(args.salt ? { salt: args.salt } : {}),
      ...(guarded ? { guardrails: { maxErrorRate, maxP95LatencyMs, minSamples } } : {}),
    });
    output(args, route, () => printRoute(route));
  }),
});

const show = defineCommand({
  meta: { name: "show", description: "A route, its split and its results" },
  args: { ...routeArg, ...common },
  run: action(async (args) => {
    const edge = client(args);
    const [route, results] = await Promise.all([edge.show(args.route), edge.results(args.route)]);
    output(args, { route, results }, () => {
      printRoute(route);
      printResults(results);
    });
  }),
});

const list = defineCommand({
  meta: { name: "list", description: "The tenant's routes" },
  args: { ...common },
  run: action(async (args) => {
    const routes = await client(args).list();
    output(args, routes, () => {
      for (const r of routes) console.log(`${r.name.padEnd(24)} ${r.status.padEnd(10)} v${r.version}`);
    });
  }),
});

const setWeights = defineCommand({
  meta: { name: "set-weights", description: "Change weights; only the subjects that must move, move" },
  args: {
    ...routeArg,
    weights: { type: "string", required: true, description: "name=weight,... (basis points or %)" },
    "expected-version": { type: "string", description: "fail unless the route is at this version" },
    ...common,
  },
  run: action(async (args) => {
    const expected = parseNumber(args["expected-version"], "expected-version", 1);
    const route = await client(args).setWeights(args.route, parseWeights(args.weights, "weights"), expected);
    output(args, route, () => printRoute(route));
  }),
});

const statusCommand = (status: "running" | "paused", description: string) =>
  defineCommand({
    meta: { name: status === "running" ? "resume" : "pause", description },
    args: { ...routeArg, ...common },
    run: action(async (args) => {
      const route = await client(args).setStatus(args.route, status);
      output(args, route, () => printRoute(route));
    }),
  });

const promote = defineCommand({
  meta: { name: "promote", description: "Move an alias to a variant's version and conclude the route" },
  args: {
    ...routeArg,
    variant: { type: "string", required: true, description: "the winning variant" },
    alias: { type: "string", required: true, description: "the alias to move (e.g. prod)" },
    expected: { type: "string", description: "compare-and-set: the version the alias must be at now" },
    ...common,
  },
  run: action(async (args) => {
    const expected = parseNumber(args.expected, "expected", 1);
    const p = await client(args).promote(args.route, args.variant, args.alias, expected);
    output(args, p, () => {
      console.log(
        `promoted ${p.route.winner}: ${p.adapter}@${p.alias} -> ${p.version} (was ${p.previous ?? "unset"})`,
      );
      printRoute(p.route);
    });
  }),
});

const stop = defineCommand({
  meta: { name: "stop", description: "Conclude without a winner: control answers from now on" },
  args: { ...routeArg, ...common },
  run: action(async (args) => {
    const route = await client(args).stop(args.route);
    output(args, route, () => printRoute(route));
  }),
});

const compare = defineCommand({
  meta: { name: "compare", description: "One prompt, several adapter versions, answers side by side" },
  args: {
    models: { type: "string", required: true, description: "model,model,... (e.g. support@1,support@2)" },
    prompt: { type: "string", required: true, description: "the user message" },
    "max-tokens": { type: "string", default: "64", description: "tokens per answer" },
    ...common,
  },
  run: action(async (args) => {
    const maxTokens = parseNumber(args["max-tokens"], "max-tokens", 1, 4096) ?? 64;
    const out = await client(args).compare(
      args.models.split(",").map((m) => m.trim()),
      args.prompt,
      maxTokens,
    );
    output(args, out, () => {
      for (const r of out.results) {
        console.log(`== ${r.model}${r.adapter ? ` (${r.adapter})` : ""}  ${r.status}  ${r.latencyMs} ms`);
        console.log(r.text ?? `error: ${r.error}`);
      }
    });
    // a comparison with a failed answer is not a success: scripts and CI must see which model failed
    const failed = out.results.filter((r) => r.error !== null || r.status < 200 || r.status >= 300);
    if (failed.length > 0) {
      for (const r of failed)
        console.error(`error: ${r.model} failed: ${r.status} ${r.error ?? ""}`.trimEnd());
      process.exit(EXIT.refused);
    }
  }),
});

await runChecked(
  defineCommand({
    meta: { name: "experiment", description: "A/B routes between adapter versions" },
    subCommands: {
      create,
      show,
      list,
      "set-weights": setWeights,
      pause: statusCommand("paused", "Send everyone to control and stop recording"),
      resume: statusCommand("running", "Resume the split"),
      promote,
      stop,
      compare,
    },
  }),
);
