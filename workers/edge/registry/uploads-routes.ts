// Weight uploads. Small files: one streamed POST. Files above the Worker's request-body limit: R2 multipart
// driven by the client (create → parts → complete). Either way the result is a staged upload that a publish
// consumes; a staged upload is not a blob and belongs to the tenant that made it. D1 keeps each open
// multipart upload and its parts (upload-store.ts), so an unknown upload id reads as 404 and a wrong part
// list is refused naming the part, before R2 is asked.
import { Hono } from "hono";
import { z } from "zod";
import {
  CompleteMultipartRequestSchema,
  CreateMultipartRequestSchema,
  decimalIntegerText,
  Sha256Schema,
  type UploadResponse,
} from "../../../src/contracts/admin.ts";
import { problemsError } from "../../../src/contracts/issues.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import type { EdgeEnv } from "../env.ts";
import { scoped, tenantWith } from "../http/auth.ts";
import { BlobStore, type StagedUpload } from "./blob-store.ts";
import { UploadStore } from "./upload-store.ts";

const UploadParam = z.strictObject({ upload: z.uuid() });
const PartParam = UploadParam.extend({ part: decimalIntegerText(1, 10_000) });
const UploadIdQuery = z.strictObject({ uploadId: z.string().min(1) });
const UploadHeaders = z.looseObject({ "x-content-sha256": Sha256Schema });

type ListedPart = z.infer<typeof CompleteMultipartRequestSchema>["parts"][number];

function toResponse(upload: StagedUpload): UploadResponse {
  return { upload: upload.id, sha256: upload.sha256, sizeBytes: upload.size };
}

function bodyOf(req: Request): ReadableStream {
  if (req.body === null) throw new AppError("invalid_request", "body: must hold the file's bytes; got none");
  return req.body;
}

function unknownUpload(uploadId: string): AppError {
  return new AppError(
    "not_found",
    `multipart upload ${uploadId} does not exist (or was completed or aborted) for this upload`,
    { param: "uploadId" },
  );
}

async function requireOpen(uploads: UploadStore, tenant: string, upload: string, uploadId: string) {
  if (!(await uploads.isOpen(tenant, upload, uploadId))) throw unknownUpload(uploadId);
}

/** Every way the listed parts differ from the ones uploaded, each naming the part (the order is the schema's). */
function partProblems(upload: string, listed: ListedPart[], uploaded: Map<number, string>) {
  const problems: { path: (string | number)[]; text: string }[] = [];
  for (const [i, part] of listed.entries()) {
    const etag = uploaded.get(part.partNumber);
    if (etag === undefined) {
      problems.push({
        path: ["parts", i, "partNumber"],
        text: `parts[${i}].partNumber: part ${part.partNumber} was never uploaded under this uploadId (PUT /admin/uploads/${upload}/parts/${part.partNumber}); got ${part.partNumber}`,
      });
    } else if (etag !== part.etag) {
      problems.push({
        path: ["parts", i, "etag"],
        text: `parts[${i}].etag: must be the etag the upload of part ${part.partNumber} answered; got ${JSON.stringify(part.etag)}`,
      });
    }
  }
  for (const number of uploaded.keys()) {
    if (number > listed.length) {
      problems.push({
        path: ["parts"],
        text: `parts: part ${number} was uploaded but is not listed; list every part, 1 to ${Math.max(...uploaded.keys())}`,
      });
    }
  }
  return problems;
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
    await new UploadStore(c.env.DB).openMultipart(tenant, created.id, created.uploadId);
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
      const uploads = new UploadStore(c.env.DB);
      await requireOpen(uploads, tenant, upload, uploadId);
      const uploaded = await new BlobStore(c.env.ADAPTERS).uploadPart(
        tenant,
        upload,
        uploadId,
        part,
        bodyOf(c.req.raw),
      );
      await uploads.recordPart(tenant, upload, uploaded.partNumber, uploaded.etag);
      return c.json({ partNumber: uploaded.partNumber, etag: uploaded.etag });
    },
  )
  .post(
    "/uploads/:upload/complete",
    validate("param", UploadParam),
    validate("json", CompleteMultipartRequestSchema),
    async (c) => {
      const { tenant } = tenantWith(c, "publish");
      const { upload } = c.req.valid("param");
      const { uploadId, parts } = c.req.valid("json");
      const uploads = new UploadStore(c.env.DB);
      await requireOpen(uploads, tenant, upload, uploadId);
      const problems = partProblems(upload, parts, await uploads.parts(tenant, upload));
      if (problems.length > 0) {
        throw problemsError(
          "invalid_request",
          problems.map((p) => p.text),
          problems[0]?.path,
        );
      }
      const staged = await new BlobStore(c.env.ADAPTERS).completeMultipart(tenant, upload, uploadId, parts);
      await uploads.closeMultipart(tenant, upload);
      return c.json(toResponse(staged), 201);
    },
  )
  .delete("/uploads/:upload", validate("param", UploadParam), validate("query", UploadIdQuery), async (c) => {
    const { tenant } = tenantWith(c, "publish");
    const { upload } = c.req.valid("param");
    const { uploadId } = c.req.valid("query");
    const uploads = new UploadStore(c.env.DB);
    await requireOpen(uploads, tenant, upload, uploadId);
    await new BlobStore(c.env.ADAPTERS).abortMultipart(tenant, upload, uploadId);
    await uploads.closeMultipart(tenant, upload);
    return c.body(null, 204);
  });
