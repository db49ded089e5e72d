// Warm before the first request: the edge pushes a version to the runner its rendezvous hashing picks when
// the version is about to get traffic (an alias moved onto it, it was published with an alias, a route
// started on it), and a joining member gets the most used adapters of its share. All of it runs after the
// response (waitUntil); a push that fails costs nothing but the cold load the first request would have paid.
import type { RouteConfig } from "../../../src/contracts/experiments.ts";
import { AppError } from "../../../src/errors.ts";
import { openAdapter, resolveModel } from "../inference/infer.ts";
import { rank } from "../pool/rendezvous.ts";
import type { Runner, RunnerClient } from "../pool/runner-client.ts";
import { RegistryStore, type VersionRow } from "../registry/registry-store.ts";
import type { Member } from "./member-store.ts";

/** At most this many adapters are pushed to a joining member. */
export const WARM_ON_JOIN = 8;

/** The runner rendezvous hashing alone gives `adapterId` (what it is in no isolate's residency). */
function owner(client: RunnerClient, adapterId: string, baseModel: string): Runner | undefined {
  const serving = client.runners.filter((r) => r.baseModel === undefined || r.baseModel === baseModel);
  const candidates = serving.map((r) => ({ ...r, inFlight: 0, healthy: true, resident: false }));
  const first = rank(candidates, adapterId)[0];
  return first === undefined ? undefined : client.runners[first.index - 1];
}

async function push(env: Env, client: RunnerClient, runner: Runner, row: VersionRow): Promise<boolean> {
  // A runner refused these weights already (registry-store.ts markUnservable): pushing them again only fails.
  if (row.unservable_reason !== null) return false;
  try {
    const loaded = await client.loadAdapter(
      runner,
      row.runner_adapter_id,
      () => openAdapter(env, row),
      "warm",
    );
    if (!loaded.ok) return false;
    client.noteResident(runner, row.runner_adapter_id, true);
    return true;
  } catch (error) {
    console.error(`warm: ${row.name}@${row.version} to runner ${runner.index}:`, error);
    return false;
  }
}

/** Pushes one version to its rendezvous owner; true when that runner took it. */
export async function warmVersion(env: Env, client: RunnerClient, row: VersionRow): Promise<boolean> {
  if (!client.fleet) return false;
  await client.sync();
  const target = owner(client, row.runner_adapter_id, row.base_model_id);
  return target !== undefined && (await push(env, client, target, row));
}

/**
 * Pushes the version each variant of a route that just started resolves to now (live variants with a share,
 * and shadows, which get copies; base-model variants need nothing) to its rendezvous owner, each content once.
 * A target that no longer resolves is skipped: its requests are refused by name as they come.
 */
export async function warmRoute(
  env: Env,
  client: RunnerClient,
  tenant: string,
  config: RouteConfig,
): Promise<number> {
  if (!client.fleet) return 0;
  const rows = new Map<string, VersionRow>();
  for (const v of config.variants) {
    if (v.cut !== null || (!v.shadow && v.weight === 0)) continue;
    try {
      const target = await resolveModel(env, tenant, v.target);
      if (target.kind === "adapter") rows.set(target.row.runner_adapter_id, target.row);
    } catch (error) {
      if (!(error instanceof AppError) || error.status >= 500) throw error;
    }
  }
  let pushed = 0;
  for (const row of rows.values()) if (await warmVersion(env, client, row)) pushed++;
  return pushed;
}

/**
 * Pushes to a member that just joined the adapters it now owns, most requested first (requests as the other
 * members' last heartbeats counted them), at most WARM_ON_JOIN.
 */
export async function warmOnJoin(
  env: Env,
  client: RunnerClient,
  joined: Member,
  others: readonly Member[],
): Promise<number> {
  await client.sync();
  const me = client.runners.find((r) => r.url === joined.url);
  if (me === undefined) return 0;
  const usage = new Map<string, number>();
  for (const m of others) {
    if (m.baseModel !== joined.baseModel || m.id === joined.id) continue;
    for (const r of m.resident) usage.set(r.adapterId, (usage.get(r.adapterId) ?? 0) + r.requests);
  }
  const mine = [...usage]
    .sort((a, b) => b[1] - a[1])
    .map(([id]) => id)
    .filter((id) => owner(client, id, joined.baseModel)?.url === joined.url)
    .slice(0, Math.min(WARM_ON_JOIN, joined.slots));
  const registry = new RegistryStore(env.DB);
  let pushed = 0;
  for (const id of mine) {
    const row = await registry.withContent(id);
    if (row !== null && row.base_model_id === joined.baseModel && (await push(env, client, me, row)))
      pushed++;
  }
  return pushed;
}
