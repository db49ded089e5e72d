// After training, with --publish: publish the PEFT directory with its evaluation as manifest metrics, then,
// with --canary, put that share of the route's traffic on the new version. Prints what was done: lines for a
// person, or JSON events (`published`, `canary`) where the run prints JSON lines.

import { createEdgeClient, type EdgeClientOptions } from "../../../cli/edge-client.ts";
import { createExperimentClient } from "../../../cli/experiment-client.ts";
import type { VersionResponse } from "../../../src/contracts/admin.ts";
import { AppError } from "../../../src/errors.ts";
import { createAliasClient } from "./aliases.ts";
import { CANARY_ALIAS, type CanaryOutcome, championOf, describeCanary, startCanary } from "./canary.ts";
import { type ProgressSink, wantsJson } from "./progress.ts";
import { describe, metricsOf, publishTrained } from "./publish.ts";
import type { TrainReport } from "./report.ts";
import { canaryBasisPoints, canaryRoute, type TrainSettings } from "./settings.ts";

/** Where to publish: flags first, then EDGE_URL / EDGE_TOKEN; null without --publish. */
export function releaseTarget(
  s: TrainSettings,
  env: Record<string, string | undefined>,
): EdgeClientOptions | null {
  if (!s.publish) return null;
  const endpoint = s.endpoint ?? env.EDGE_URL;
  const token = s.token ?? env.EDGE_TOKEN;
  if (!endpoint) throw new AppError("invalid_request", "--publish: pass --endpoint or set EDGE_URL");
  if (!token) throw new AppError("invalid_request", "--publish: pass --token or set EDGE_TOKEN");
  return { endpoint, token };
}

export interface Released {
  version: VersionResponse;
  canary: CanaryOutcome | null;
}

export async function releaseTrained(
  s: TrainSettings,
  report: TrainReport,
  target: EdgeClientOptions,
  sink: ProgressSink,
): Promise<Released> {
  const name = s.name as string;
  const aliases = createAliasClient(target);
  const bp = canaryBasisPoints(s);
  // Read before publishing: the champion is whatever held prod before this version existed.
  const before = bp === null ? {} : await aliases.aliases(name);
  const metrics = metricsOf(report);
  const version = await publishTrained(createEdgeClient(target), s.out, {
    name,
    base: report.baseModel,
    alias: s.alias,
    description: describe(report),
    metrics,
  });
  const json = wantsJson(s.json);
  if (json) {
    const { name: n, version: v, weightsSha256, adapterId, aliases: a } = version;
    sink.event("published", { name: n, version: v, weightsSha256, adapterId, aliases: a, metrics });
  } else {
    console.log(`published ${version.name}@${version.version} (sha256:${version.weightsSha256})`);
    console.log(
      `  metrics  ${Object.entries(metrics)
        .map(([k, v]) => `${k}=${+v.toPrecision(4)}`)
        .join(" ")}`,
    );
  }
  if (bp === null) return { version, canary: null };
  const canary = await startCanary(
    { aliases, experiments: createExperimentClient(target) },
    {
      route: canaryRoute(s),
      name,
      version: version.version,
      basisPoints: bp,
      champion: championOf(name, before, version.baseModel),
      previousCanary: before[CANARY_ALIAS] ?? null,
    },
  );
  if (json) {
    sink.event("canary", {
      action: canary.action,
      route: canary.route.name,
      route_version: canary.route.version,
      status: canary.route.status,
      variant: canary.canaryVariant,
      variants: canary.route.config.variants.map((v) => ({
        name: v.name,
        target: v.target,
        weight: v.weight,
      })),
    });
  } else {
    for (const line of describeCanary(canary, name, version.version)) console.log(line);
  }
  return { version, canary };
}
