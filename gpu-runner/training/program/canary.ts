// `--canary <percent>`: a share of a route's traffic on the version just published. The canary variant's
// target is the alias `<name>@canary`, moved to each new version, because a route's variant targets are fixed
// at creation: so a later run only moves the alias and re-weighs, and the edge's minimal rebalance keeps every
// bucket range that need not move. Control is the champion: `<name>@prod` when that alias exists, else the base.

import { EdgeError } from "../../../cli/edge-client.ts";
import type { ExperimentClient } from "../../../cli/experiment-client.ts";
import type { Route } from "../../../src/contracts/experiments.ts";
import { AppError } from "../../../src/errors.ts";
import type { AliasClient } from "./aliases.ts";

export const CANARY_ALIAS = "canary";
export const CHAMPION_ALIAS = "prod";
const BUCKETS = 10_000;

export interface CanaryRequest {
  route: string;
  name: string;
  version: number;
  basisPoints: number;
  /** The target control gets when the route is new (see championOf). */
  champion: string;
  /** Where `<name>@canary` pointed before this run (compare-and-set), null when it did not exist. */
  previousCanary: number | null;
}

export interface CanaryOutcome {
  action: "created" | "updated";
  route: Route;
  canaryVariant: string;
  controlVariant: string;
}

/** The champion a new version is judged against: the prod alias, or the base model. */
export function championOf(name: string, aliases: Record<string, number>, base: string): string {
  return aliases[CHAMPION_ALIAS] === undefined ? base : `${name}@${CHAMPION_ALIAS}`;
}

/** The weights that give the canary `basisPoints`, taken from (or given back to) control only. */
export function canaryWeights(route: Route, canaryTarget: string, basisPoints: number) {
  const live = route.config.variants.filter((v) => !v.shadow);
  const canary = live.find((v) => v.target === canaryTarget);
  if (canary === undefined) {
    const seen = live.map((v) => `${v.name}=${v.target}`).join(", ");
    throw new AppError(
      "invalid_request",
      `--route ${route.name}: has no live variant with target ${canaryTarget} (variants: ${seen}); pass --route to start a canary on another route`,
      { param: "route" },
    );
  }
  const control = live.find((v) => v.name === route.config.control);
  if (control === undefined || control.name === canary.name) {
    throw new AppError(
      "invalid_request",
      `--route ${route.name}: the canary variant ${canary.name} is its control`,
      {
        param: "route",
      },
    );
  }
  const controlWeight = control.weight + canary.weight - basisPoints;
  if (controlWeight < 0) {
    throw new AppError(
      "invalid_request",
      `--canary: ${basisPoints} basis points need ${basisPoints - canary.weight} from control ${control.name}, which holds ${control.weight}`,
      { param: "canary" },
    );
  }
  return {
    canary: canary.name,
    control: control.name,
    weights: { [canary.name]: basisPoints, [control.name]: controlWeight },
  };
}

async function findRoute(experiments: ExperimentClient, name: string): Promise<Route | null> {
  try {
    return await experiments.show(name);
  } catch (error) {
    if (error instanceof EdgeError && error.status === 404) return null;
    throw error;
  }
}

async function createRoute(
  clients: { aliases: AliasClient; experiments: ExperimentClient },
  r: CanaryRequest,
  target: string,
): Promise<Route> {
  try {
    return await clients.experiments.create({
      name: r.route,
      control: "control",
      variants: [
        { name: "control", target: r.champion, weight: BUCKETS - r.basisPoints },
        { name: "canary", target, weight: r.basisPoints },
      ],
      description: `canary of ${r.name} (npm run train --canary)`,
    });
  } catch (error) {
    // Put the alias back where it was; an alias that did not exist before has no delete to undo it with.
    if (r.previousCanary !== null)
      await clients.aliases.move(r.name, CANARY_ALIAS, r.previousCanary, r.version).catch(() => undefined);
    throw error;
  }
}

export async function startCanary(
  clients: { aliases: AliasClient; experiments: ExperimentClient },
  r: CanaryRequest,
): Promise<CanaryOutcome> {
  const target = `${r.name}@${CANARY_ALIAS}`;
  const existing = await findRoute(clients.experiments, r.route);
  if (existing?.status === "concluded") {
    throw new AppError(
      "conflict",
      `--route ${r.route}: concluded${existing.winner ? ` (winner ${existing.winner})` : ""}; pass --route <new name> to start another canary`,
      { param: "route" },
    );
  }
  // Checked before the alias moves, so a refused canary leaves the registry as it was.
  const plan = existing === null ? null : canaryWeights(existing, target, r.basisPoints);
  await clients.aliases.move(r.name, CANARY_ALIAS, r.version, r.previousCanary);
  if (existing === null || plan === null) {
    const route = await createRoute(clients, r, target);
    return { action: "created", route, canaryVariant: "canary", controlVariant: "control" };
  }
  const route = await clients.experiments.setWeights(r.route, plan.weights, existing.version);
  return { action: "updated", route, canaryVariant: plan.canary, controlVariant: plan.control };
}

/** One line per variant: what a person reads after the run. */
export function describeCanary(o: CanaryOutcome, name: string, version: number): string[] {
  const pct = (bp: number) => `${(bp / 100).toFixed(2)}%`;
  const lines = [`canary: ${o.action} route ${o.route.name} (version ${o.route.version}, ${o.route.status})`];
  for (const v of o.route.config.variants.filter((x) => !x.shadow)) {
    const now = v.name === o.canaryVariant ? ` (= ${name}@${version})` : "";
    const cut = v.cut ? `  CUT by a guardrail: ${v.cut.reason}` : "";
    lines.push(`  ${v.name.padEnd(10)} ${`${v.target}${now}`.padEnd(32)} ${pct(v.weight)}${cut}`);
  }
  return lines;
}
