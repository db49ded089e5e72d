// Weight uploads. Small files: one streamed POST. Files above the Worker's request-body limit: R2 multipart
// driven by the client (create → parts → complete). Either way the result is a staged upload that a publish
// consumes; a staged upload is not a blob and belongs to the tenant that made it.
import { Hono } from "hono";
import { z } from "zod";
import {
  CompleteMultipartRequestSchema,
  CreateMultipartRequestSchema,
  Sha256Schema,
  type UploadResponse,
} from "../../../src/contracts/admin.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import type { EdgeEnv } from "../env.ts";
import { scoped, tenantWith } from "../http/auth.ts";
import { BlobStore, type StagedUpload } from "./blob-store.ts";

const UploadParam = z.strictObject({ upload: z.uuid() });
const PartParam = UploadParam.extend({ part: z.coerce.number().int().min(1).max(10_000) });
const UploadIdQuery = z.strictObject({ uploadId: z.string().min(1) });
const UploadHeaders = z.looseObject({ "x-content-sha256": Sha256Schema });

function toResponse(upload: StagedUpload): UploadResponse {
  return { upload: upload.id, sha256: upload.sha256, sizeBytes: upload.size };
}

function bodyOf(req: Request): ReadableStream {
  if (req.body === null) throw new AppError("invalid_request", "body: must hold the file's bytes; got none");
  return req.body;
}

export const uploadRoutes = new Hono<EdgeEnv>()
  .use("/uploads", scoped("publish"))
  .use("/uploads/*", scoped("publish"))
  .post("/uploads", validate("header", UploadHeaders), async (c) => {
    const { tenant } = tenantWith(c, "publish");
    const sha256 = c.req.valid("header")["x-content-sha256"];
    const staged = await new BlobStore(c.env.ADAPTERS).stage(tenant, bodyOf(c.req.raw), sha256);
    return c.json(toResponse(staged), 201);
  })
  .post("/uploads/multipart", validate("json", CreateMultipartRequestSchema), async (c) => {
    const { tenant } = tenantWith(c, "publish");
    const created = await new BlobStore(c.env.ADAPTERS).createMultipart(tenant, c.req.valid("json").sha256);
    return c.json({ upload: created.id, uploadId: created.uploadId }, 201);
  })
  .put(
    "/uploads/:upload/parts/:part",
    validate("param", PartParam),
    validate("query", UploadIdQuery),
    async (c) => {
      const { tenant } = tenantWith(c, "publish");
      const { upload, part } = c.req.valid("param");
      const { uploadId } = c.req.valid("query");
      const uploaded = await new BlobStore(c.env.ADAPTERS).uploadPart(
        tenant,
        upload,
        uploadId,
        part,
        bodyOf(c.req.raw),
      );
      return c.json({ partNumber: uploaded.partNumber, etag: uploaded.etag });
    },
  )
  .post(
    "/uploads/:upload/complete",
    validate("param", UploadParam),
    validate("json", CompleteMultipartRequestSchema),
    async (c) => {
      const { tenant } = tenantWith(c, "publish");
      const { uploadId, parts } = c.req.valid("json");
      const staged = await new BlobStore(c.env.ADAPTERS).completeMultipart(
        tenant,
        c.req.valid("param").upload,
        uploadId,
        parts,
      );
      return c.json(toResponse(staged), 201);
    },
  )
  .delete("/uploads/:upload", validate("param", UploadParam), validate("query", UploadIdQuery), async (c) => {
    const { tenant } = tenantWith(c, "publish");
    await new BlobStore(c.env.ADAPTERS).abortMultipart(
      tenant,
      c.req.valid("param").upload,
      c.req.valid("query").uploadId,
    );
    return c.body(null, 204);
  });
