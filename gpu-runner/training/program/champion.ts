// The champion a new version is judged against: `--champion <dir>`, else the adapter's published
// `<name>@prod` downloaded from the edge, else the base model. Evaluating the version that serves today, not a
// local copy of it, is what makes the comparison in the model card and the manifest metrics mean something.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { createEdgeClient, type EdgeClientOptions } from "../../../cli/edge-client.ts";
import { createAliasClient } from "./aliases.ts";
import { CHAMPION_ALIAS } from "./canary.ts";
import type { TrainSettings } from "./settings.ts";

export interface Champion {
  /** A PEFT directory, or null for the base model. */
  dir: string | null;
  /** How the report names it: the folder's name, `<name>@<version>`, or null for the base. */
  label: string | null;
  /** The registry version, when the champion is a published one. */
  version: number | null;
  /** Removes a downloaded champion; a no-op otherwise. */
  dispose(): Promise<void>;
}

const noop = async () => undefined;
const BASE: Champion = { dir: null, label: null, version: null, dispose: noop };

/** The edge to ask for `<name>@prod`: the release target, or --endpoint and --token given without --publish. */
export function championEdge(s: TrainSettings, target: EdgeClientOptions | null): EdgeClientOptions | null {
  if (s.champion !== undefined || s.name === undefined) return null;
  if (target !== null) return target;
  return s.endpoint && s.token ? { endpoint: s.endpoint, token: s.token } : null;
}

export async function resolveChampion(s: TrainSettings, edge: EdgeClientOptions | null): Promise<Champion> {
  if (s.champion !== undefined) {
    return { dir: s.champion, label: basename(resolve(s.champion)), version: null, dispose: noop };
  }
  if (edge === null || s.name === undefined) return BASE;
  // A missing adapter answers no aliases: its first version is judged against the base.
  const version = (await createAliasClient(edge).aliases(s.name))[CHAMPION_ALIAS];
  if (version === undefined) return BASE;
  const dir = await mkdtemp(join(tmpdir(), "lora-edge-champion-"));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    await createEdgeClient(edge).downloadVersion(s.name, version, dir);
  } catch (error) {
    await dispose();
    throw error;
  }
  return { dir, label: `${s.name}@${version}`, version, dispose };
}
