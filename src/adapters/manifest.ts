// Builds the manifest of a version from a validated adapter, so every publisher (edge route, script) fills
// it the same way.
import type { BaseModelSpec } from "../contracts/base-model.ts";
import { type AdapterManifest, AdapterManifestSchema } from "../contracts/manifest.ts";
import { adapterId, type ValidatedAdapter } from "./validate.ts";

export interface BuildManifestInput {
  name: string;
  version: number;
  weightsSha256: string;
  sizeBytes: number;
  adapter: ValidatedAdapter;
  spec: BaseModelSpec;
  /** adapter_config.json as uploaded. */
  peftConfig: Record<string, unknown>;
  createdBy: string;
  createdAt: string;
  parentVersion: number | null;
  metrics?: Record<string, number>;
  description?: string;
}

/** The distinct last path parts of the adapted modules, e.g. ["q_proj", "v_proj"]. */
function targetKinds(adapter: ValidatedAdapter): string[] {
  return [...new Set(adapter.modules.map((m) => m.module.split(".").pop() ?? m.module))].sort();
}

export async function buildManifest(input: BuildManifestInput): Promise<AdapterManifest> {
  const { adapter } = input;
  return AdapterManifestSchema.parse({
    name: input.name,
    version: input.version,
    weightsSha256: input.weightsSha256,
    adapterId: await adapterId(input.weightsSha256, adapter),
    sizeBytes: input.sizeBytes,
    dtype: adapter.dtype,
    baseModel: { id: input.spec.id, fingerprint: input.spec.fingerprint },
    targetModules: targetKinds(adapter),
    modules: adapter.modules.map((m) => ({ module: m.module, rank: m.rank, alpha: m.alpha, scale: m.scale })),
    maxRank: Math.max(...adapter.modules.map((m) => m.rank)),
    rslora: adapter.config.use_rslora,
    peftConfig: input.peftConfig,
    createdBy: input.createdBy,
    createdAt: input.createdAt,
    parentVersion: input.parentVersion,
    ...(input.metrics === undefined ? {} : { metrics: input.metrics }),
    ...(input.description === undefined ? {} : { description: input.description }),
  });
}
