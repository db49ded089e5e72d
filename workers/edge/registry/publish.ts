// Publishing a version: staged upload → claim → header check → validation against the base → value check
// while copying to the content-addressed blob → one D1 batch. Every refusal happens before the blob is
// written and no row is written until the blob exists, so a refused publish leaves nothing behind; the staged
// upload is discarded either way. The claim (one conditional insert in D1) makes an upload publish once, however
// many requests race on it.

import { PEFT_WEIGHTS_FILE } from "../../../src/adapters/peft-files.ts";
import {
  adapterId as runnerAdapterId,
  type ValidatedAdapter,
  validateAdapter,
} from "../../../src/adapters/validate.ts";
import type { PublishVersionRequest } from "../../../src/contracts/admin.ts";
import type { AdapterManifest } from "../../../src/contracts/manifest.ts";
import { AppError } from "../../../src/errors.ts";
import type { BaseModelStore, StoredBaseModel } from "./base-model-store.ts";
import type { BlobStore, StagedUpload } from "./blob-store.ts";
import type { RegistryStore, VersionRow } from "./registry-store.ts";
import type { UploadStore } from "./upload-store.ts";
import { sweepUploads } from "./upload-sweep.ts";
import { finiteWeightsCheck } from "./weights-check.ts";

export interface PublishDeps {
  blobs: BlobStore;
  uploads: UploadStore;
  registry: RegistryStore;
  baseModels: BaseModelStore;
  maxRank: number;
  /**
   * The limits agreement (workers/edge/fleet/limits.ts): refuses, before anything is written, an adapter no
   * runner serving its base accepts. Absent: no runner limits are consulted.
   */
  checkServable?: (needs: {
    name: string;
    baseModel: string;
    rank: number;
    modules: string[];
  }) => Promise<void>;
}

export interface PublishInput {
  tenant: string;
  actor: string;
  name: string;
  request: PublishVersionRequest;
}

const WEIGHTS_FILE = PEFT_WEIGHTS_FILE;

export async function publishVersion(deps: PublishDeps, input: PublishInput): Promise<VersionRow> {
  // Housekeeping of the tenant's dead uploads (upload-sweep.ts): its failure is logged, never this publish's.
  await sweepUploads(deps, input.tenant, Date.now()).catch((error: unknown) => {
    console.error(`upload sweep for tenant ${input.tenant} failed:`, error);
  });
  const upload = await deps.blobs.staged(input.tenant, input.request.upload);
  if (upload === null) {
    throw new AppError("not_found", `upload ${input.request.upload} does not exist (or was already used)`, {
      param: "upload",
    });
  }
  if (!(await deps.uploads.claim(input.tenant, upload.id))) {
    throw new AppError(
      "conflict",
      `upload ${upload.id} is already being published by another request; an upload publishes once ` +
        "(upload the file again to publish it again)",
      { param: "upload" },
    );
  }
  try {
    return await publishStaged(deps, input, upload);
  } finally {
    await deps.blobs.discardUpload(input.tenant, upload.id);
  }
}

/**
 * For a publish refused before it began (its body failed the schema): deletes the staged upload it names,
 * unless another publish holds that upload. The claim stays, so the upload can never publish afterwards.
 */
export async function discardRefusedUpload(
  deps: Pick<PublishDeps, "blobs" | "uploads">,
  tenant: string,
  upload: string,
): Promise<void> {
  if (await deps.uploads.claim(tenant, upload)) await deps.blobs.discardUpload(tenant, upload);
}

async function publishStaged(
  deps: PublishDeps,
  input: PublishInput,
  upload: StagedUpload,
): Promise<VersionRow> {
  const { request } = input;
  const base = await deps.baseModels.get(request.base);
  if (base === null) {
    throw new AppError(
      "invalid_adapter",
      `adapter "${input.name}": base model ${JSON.stringify(request.base)} is not registered (unknown base model)`,
      { param: "base" },
    );
  }
  const [existing] = await deps.registry.adapters(input.tenant, input.name);
  if (existing !== undefined && existing.baseModel !== base.spec.id) {
    throw new AppError(
      "conflict",
      `adapter "${input.name}" is for base model ${JSON.stringify(existing.baseModel)}; got base ` +
        `${JSON.stringify(base.spec.id)}. Publish it under a new name.`,
      { param: "base" },
    );
  }
  const header = await deps.blobs.readHeader(input.tenant, upload, WEIGHTS_FILE);
  const validated = validateAdapter({
    name: input.name,
    config: request.config,
    header,
    spec: base.spec,
    maxRank: deps.maxRank,
  });
  if (request.parentVersion !== undefined) {
    await deps.registry.version(input.tenant, input.name, request.parentVersion);
  }
  await deps.checkServable?.({
    name: input.name,
    baseModel: base.spec.id,
    rank: Math.max(...validated.modules.map((m) => m.rank)),
    modules: validated.modules.map((m) => m.module),
  });
  const id = await runnerAdapterId(upload.sha256, validated);
  const { created } = await deps.blobs.promote(
    input.tenant,
    upload,
    finiteWeightsCheck(header, `adapter "${input.name}"`),
  );
  try {
    return await deps.registry.publish({
      tenant: input.tenant,
      name: input.name,
      baseModelId: base.spec.id,
      description: request.description ?? null,
      runnerAdapterId: id,
      weightsSha256: upload.sha256,
      weightsSize: upload.size,
      config: request.config,
      manifest: manifestOf(input, upload, base, validated, id),
      alias: request.alias ?? null,
      actor: input.actor,
    });
  } catch (error) {
    // A blob this publish created and no version references is an orphan: remove it.
    if (created && !(await deps.registry.blobInUse(upload.sha256)))
      await deps.blobs.deleteBlob(upload.sha256);
    throw error;
  }
}

function targetModulesOf(validated: ValidatedAdapter): string[] {
  const targets = validated.config.target_modules;
  if (targets === null) return [];
  return typeof targets === "string" ? [targets] : [...targets];
}

function manifestOf(
  input: PublishInput,
  upload: StagedUpload,
  base: StoredBaseModel,
  validated: ValidatedAdapter,
  id: string,
): Omit<AdapterManifest, "version"> {
  const { request } = input;
  return {
    name: input.name,
    weightsSha256: upload.sha256,
    adapterId: id,
    sizeBytes: upload.size,
    dtype: validated.dtype,
    baseModel: { id: base.spec.id, fingerprint: base.spec.fingerprint },
    targetModules: targetModulesOf(validated),
    modules: validated.modules.map((m) => ({
      module: m.module,
      rank: m.rank,
      alpha: m.alpha,
      scale: m.scale,
    })),
    maxRank: Math.max(...validated.modules.map((m) => m.rank)),
    rslora: validated.config.use_rslora,
    peftConfig: request.config,
    createdBy: input.actor,
    createdAt: new Date().toISOString(),
    parentVersion: request.parentVersion ?? null,
    ...(request.metrics === undefined ? {} : { metrics: request.metrics }),
    ...(request.description === undefined ? {} : { description: request.description }),
  };
}
