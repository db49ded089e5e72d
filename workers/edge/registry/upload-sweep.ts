// Deletes the uploads nobody will publish: a staged upload whose publish died after claiming it (the isolate
// was killed before its `finally` deleted the upload), a staged upload left unpublished for a day, and a
// multipart upload opened a day ago and never completed. Run at the start of each publish, for the publishing
// tenant only, so no tenant's housekeeping touches another's objects and no timer is needed. Claims stay:
// a swept upload can never publish afterwards, and a sweep claims an unclaimed upload before deleting it, so
// a publish racing the sweep finds it claimed (or gone) and answers 409 or 404, never publishes half of it.
import type { BlobStore } from "./blob-store.ts";
import type { UploadStore } from "./upload-store.ts";

/** A publish holding its claim longer than this has died: a Worker request never runs an hour. */
export const CLAIM_GRACE_MS = 60 * 60 * 1000;
/** Staged and multipart uploads left unpublished this long are deleted (README: Limits). */
export const UPLOAD_TTL_MS = 24 * 60 * 60 * 1000;
/** Objects looked at per sweep, so a publish's extra work stays bounded (one R2 list, one D1 query). */
const SWEEP_BATCH = 100;

export interface SweepResult {
  /** Staged uploads deleted: their publish died, or they waited too long. */
  staged: string[];
  /** Multipart uploads aborted. */
  multipart: string[];
}

export async function sweepUploads(
  deps: { blobs: BlobStore; uploads: UploadStore },
  tenant: string,
  now: number,
): Promise<SweepResult> {
  const result: SweepResult = { staged: [], multipart: [] };
  const staged = await deps.blobs.listStaged(tenant, SWEEP_BATCH);
  const claims = await deps.uploads.claimTimes(
    tenant,
    staged.map((s) => s.id),
  );
  for (const upload of staged) {
    const claimedAt = claims.get(upload.id);
    const orphaned = claimedAt !== undefined && now - Date.parse(claimedAt) > CLAIM_GRACE_MS;
    // Claimed first, so a publish starting now cannot take it while it is being deleted.
    const abandoned =
      claimedAt === undefined &&
      now - upload.uploadedAt > UPLOAD_TTL_MS &&
      (await deps.uploads.claim(tenant, upload.id));
    if (orphaned || abandoned) {
      await deps.blobs.discardUpload(tenant, upload.id);
      result.staged.push(upload.id);
    }
  }
  const before = new Date(now - UPLOAD_TTL_MS).toISOString();
  for (const open of await deps.uploads.openedBefore(tenant, before, SWEEP_BATCH)) {
    try {
      await deps.blobs.abortMultipart(tenant, open.upload, open.uploadId);
    } catch (error) {
      // R2 aborts incomplete multipart uploads on its own after a week; one it no longer knows is gone.
      if (!(error instanceof Error && /does not exist/.test(error.message))) throw error;
    }
    await deps.uploads.closeMultipart(tenant, open.upload);
    result.multipart.push(open.upload);
  }
  return result;
}
