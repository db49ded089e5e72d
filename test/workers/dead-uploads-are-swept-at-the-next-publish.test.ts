// Uploads nobody will publish do not stay in R2 for ever: a staged upload whose publish died after claiming it
// goes at the tenant's next publish, as do staged uploads left unpublished for a day and multipart uploads
// opened a day ago and never completed. Live work is never touched: a claim younger than the grace (a publish
// in flight), a fresh upload, another tenant's uploads. A swept upload can never publish afterwards.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BlobStore } from "../../workers/edge/registry/blob-store.ts";
import { UploadStore } from "../../workers/edge/registry/upload-store.ts";
import { CLAIM_GRACE_MS, sweepUploads, UPLOAD_TTL_MS } from "../../workers/edge/registry/upload-sweep.ts";
import {
  adapterFiles,
  call,
  demoBase,
  type ErrorBody,
  json,
  newTenant,
  publish,
  upload,
} from "./support/edge.ts";

async function stage(key: string, seed: number): Promise<string> {
  const bytes = adapterFiles(await demoBase(), { r: 4, seed }).safetensors;
  return (await json<{ upload: string }>(await upload(key, bytes), 201)).upload;
}

/** A claim row as a publish leaves it when its isolate dies between the claim and its `finally`. */
async function claimedAgo(tenant: string, upload: string, ms: number): Promise<void> {
  await env.DB.prepare("INSERT INTO upload_claims (tenant, upload, claimed_at) VALUES (?, ?, ?)")
    .bind(tenant, upload, new Date(Date.now() - ms).toISOString())
    .run();
}

const inR2 = async (tenant: string, upload: string) =>
  (await env.ADAPTERS.head(`uploads/${tenant}/${upload}`)) !== null;

describe("dead uploads", () => {
  it("deletes the upload of a publish that died, at the tenant's next publish, and nothing live", async () => {
    const spec = await demoBase();
    const a = await newTenant();
    const b = await newTenant();
    const died = await stage(a.key, 3);
    await claimedAgo(a.tenant, died, CLAIM_GRACE_MS + 60_000);
    const inFlight = await stage(a.key, 4);
    await claimedAgo(a.tenant, inFlight, 1_000);
    const fresh = await stage(a.key, 5);
    const othersDied = await stage(b.key, 6);
    await claimedAgo(b.tenant, othersDied, CLAIM_GRACE_MS + 60_000);

    await publish(a.key, "next", adapterFiles(spec, { r: 4, seed: 7 }));

    expect(await inR2(a.tenant, died)).toBe(false);
    expect(await inR2(a.tenant, inFlight)).toBe(true);
    expect(await inR2(a.tenant, fresh)).toBe(true);
    expect(await inR2(b.tenant, othersDied)).toBe(true);
    // The claim outlives the object: the dead publish's upload can never be published.
    const again = await call("POST", "/admin/adapters/late/versions", {
      token: a.key,
      json: { upload: died, base: spec.id, config: adapterFiles(spec, { r: 4, seed: 3 }).config },
    });
    expect((await json<ErrorBody>(again, 404)).error.param).toBe("upload");
    // The fresh upload still publishes.
    const ok = await call("POST", "/admin/adapters/fresh/versions", {
      token: a.key,
      json: { upload: fresh, base: spec.id, config: adapterFiles(spec, { r: 4, seed: 5 }).config },
    });
    expect(ok.status).toBe(201);
  });

  it("deletes staged uploads and aborts multipart uploads left for a day, claiming them so they never publish", async () => {
    const spec = await demoBase();
    const { tenant, key } = await newTenant();
    const left = await stage(key, 8);
    const mp = await json<{ upload: string; uploadId: string }>(
      await call("POST", "/admin/uploads/multipart", { token: key, json: { sha256: "ab".repeat(32) } }),
      201,
    );
    const query = `uploadId=${encodeURIComponent(mp.uploadId)}`;
    await json(
      await call("PUT", `/admin/uploads/${mp.upload}/parts/1?${query}`, {
        token: key,
        body: new Uint8Array(64),
      }),
      200,
    );
    const deps = { blobs: new BlobStore(env.ADAPTERS), uploads: new UploadStore(env.DB) };

    // Within the day nothing goes.
    expect(await sweepUploads(deps, tenant, Date.now() + UPLOAD_TTL_MS - 60_000)).toEqual({
      staged: [],
      multipart: [],
    });
    expect(await sweepUploads(deps, tenant, Date.now() + UPLOAD_TTL_MS + 60_000)).toEqual({
      staged: [left],
      multipart: [mp.upload],
    });
    expect(await inR2(tenant, left)).toBe(false);
    const open = await env.DB.prepare("SELECT COUNT(*) AS n FROM multipart_uploads WHERE tenant = ?")
      .bind(tenant)
      .first<{ n: number }>();
    expect(open?.n).toBe(0);
    const part = await call("PUT", `/admin/uploads/${mp.upload}/parts/2?${query}`, {
      token: key,
      body: new Uint8Array(8),
    });
    expect((await json<ErrorBody>(part, 404)).error.param).toBe("uploadId");
    const published = await call("POST", "/admin/adapters/left/versions", {
      token: key,
      json: { upload: left, base: spec.id, config: adapterFiles(spec, { r: 4, seed: 8 }).config },
    });
    expect(published.status).toBe(404);
    // A second sweep finds nothing left to do.
    expect(await sweepUploads(deps, tenant, Date.now() + UPLOAD_TTL_MS + 60_000)).toEqual({
      staged: [],
      multipart: [],
    });
  });
});
