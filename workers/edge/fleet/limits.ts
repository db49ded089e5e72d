// The limits agreement: an adapter is published only if some runner serving its base can load it. Members
// report their limits when they join (widest rank, target modules); static RUNNERS entries are asked on their
// `/health`. When no runner serving the base can be asked (none joined, none answered), nothing is refused
// here and the runner's own check at load time stands (docs/architecture.md#runner-fleets).
import type { LinearKind } from "../../../src/contracts/base-model.ts";
import { LINEAR_KINDS } from "../../../src/contracts/base-model.ts";
import { AppError } from "../../../src/errors.ts";
import type { RunnerClient } from "../pool/runner-client.ts";
import { currentMembers, type FleetEnv } from "./fleet.ts";

export interface AdapterNeeds {
  name: string;
  baseModel: string;
  /** Widest rank over its modules. */
  rank: number;
  kinds: LinearKind[];
}

interface Server {
  label: string;
  maxRank: number;
  /** null: any linear kind (the project's runner adapts all seven). */
  kinds: readonly LinearKind[] | null;
}

export function kindsOf(modules: readonly string[]): LinearKind[] {
  const kinds = new Set<LinearKind>();
  for (const m of modules) {
    const kind = m.split(".").at(-1) as LinearKind;
    if ((LINEAR_KINDS as readonly string[]).includes(kind)) kinds.add(kind);
  }
  return [...kinds].sort();
}

async function servers(env: FleetEnv, client: RunnerClient, baseModel: string): Promise<Server[]> {
  const now = Date.now();
  const members = (await currentMembers(env)).filter(
    (m) => m.baseModel === baseModel && m.drainingAt === null && m.leaseUntil > now,
  );
  await client.sync();
  const memberUrls = new Set(members.map((m) => m.url));
  // Only the fleet-aware pool (the edge's own wiring) asks static runners; a bare client forwards only.
  const statics = client.runners.filter(
    (r) =>
      client.fleet &&
      r.memberId === undefined &&
      !memberUrls.has(r.url) &&
      (r.baseModel === undefined || r.baseModel === baseModel),
  );
  const read = await Promise.all(statics.map(async (r) => ({ r, limits: await client.limits(r) })));
  return [
    ...members.map((m) => ({ label: `runner ${m.id}`, maxRank: m.maxLoraRank, kinds: m.targetModules })),
    ...read
      .filter(({ limits }) => limits !== null && limits.model === baseModel)
      .map(({ r, limits }) => ({ label: `runner ${r.index}`, maxRank: limits?.maxRank ?? 0, kinds: null })),
  ];
}

/** Throws 409 conflict, naming the field, the rule and the value, when no runner serving the base accepts. */
export async function checkServable(env: FleetEnv, client: RunnerClient, needs: AdapterNeeds): Promise<void> {
  const list = await servers(env, client, needs.baseModel);
  if (list.length === 0) return;
  const fits = (s: Server) =>
    s.maxRank >= needs.rank && (s.kinds === null || needs.kinds.every((k) => s.kinds?.includes(k)));
  if (list.some(fits)) return;
  const widest = Math.max(...list.map((s) => s.maxRank));
  if (!list.some((s) => s.maxRank >= needs.rank)) {
    throw new AppError(
      "conflict",
      `adapter "${needs.name}": r (max over modules) must be <= the max_lora_rank of a runner serving ` +
        `base ${JSON.stringify(needs.baseModel)} (widest: ${widest}); got ${needs.rank}. Publish at rank <= ` +
        `${widest}, or start a runner with --max-lora-rank >= ${needs.rank}`,
      { param: "config.r", details: list.map((s) => `${s.label}: max_lora_rank ${s.maxRank}`) },
    );
  }
  throw new AppError(
    "conflict",
    `adapter "${needs.name}": target_modules must be ones a runner serving base ` +
      `${JSON.stringify(needs.baseModel)} with max_lora_rank >= ${needs.rank} accepts; got ` +
      `[${needs.kinds.join(", ")}]`,
    {
      param: "config.target_modules",
      details: list.map((s) => `${s.label}: target modules [${(s.kinds ?? LINEAR_KINDS).join(", ")}]`),
    },
  );
}
