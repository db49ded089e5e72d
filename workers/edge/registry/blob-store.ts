// Weight blobs in R2. Final blobs are content-addressed (`blobs/sha256/<hex>`), so identical weights are
// stored once. Bytes arrive first under `uploads/<tenant>/<id>` and become a blob only once the adapter has
// passed validation: R2 has no rename, so a refused upload must never have touched the `blobs/` prefix.
// Nothing here buffers a weight file: bodies are streamed, headers are read with range requests.
import { toHex } from "../../../src/crypto.ts";
import { AppError } from "../../../src/errors.ts";
import { parseHeader, readHeaderLength, type SafetensorsHeader } from "../../../src/safetensors.ts";

/** The edge reads a header into memory; real adapter headers are a few hundred KiB at most. */
export const EDGE_MAX_HEADER_BYTES = 16 * 1024 * 1024;
/** R2's smallest part, except the last (R2 multipart limits). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** R2's own code for a checksum mismatch on put. */
const R2_BAD_DIGEST = "10037";

export const blobKey = (sha256: string): string => `blobs/sha256/${sha256}`;
export const uploadKey = (tenantId: string, uploadId: string): string => `uploads/${tenantId}/${uploadId}`;

export interface StagedUpload {
  id: string;
  /** The digest the client declared; verified against the bytes before anything is published. */
  sha256: string;
  size: number;
}

function isBadDigest(error: unknown): boolean {
  return error instanceof Error && error.message.includes(R2_BAD_DIGEST);
}

function digestMismatch(field: string, declared: string): AppError {
  return new AppError(
    "invalid_request",
    `${field}: must be the sha256 of the uploaded bytes; got ${declared}, which does not match them`,
    { param: field },
  );
}

export class BlobStore {
  readonly #bucket: R2Bucket;

  constructor(bucket: R2Bucket) {
    this.#bucket = bucket;
  }

  /** Streams a request body into a staged upload; R2 checks the declared sha256 as the bytes arrive. */
  async stage(tenantId: string, body: ReadableStream, sha256: string): Promise<StagedUpload> {
    const id = crypto.randomUUID();
    try {
      const object = await this.#bucket.put(uploadKey(tenantId, id), body, {
        sha256,
        customMetadata: { sha256 },
      });
      return { id, sha256, size: object.size };
    } catch (error) {
      if (isBadDigest(error)) throw digestMismatch("x-content-sha256", sha256);
      if (error instanceof Error && /known length/i.test(error.message)) {
        // R2 stores a stream only when its length is known up front.
        throw new AppError(
          "invalid_request",
          "Content-Length: required for an upload; got a body without one",
          {
            param: "Content-Length",
          },
        );
      }
      throw error;
    }
  }

  async createMultipart(tenantId: string, sha256: string): Promise<{ id: string; uploadId: string }> {
    const id = crypto.randomUUID();
    const upload = await this.#bucket.createMultipartUpload(uploadKey(tenantId, id), {
      customMetadata: { sha256 },
    });
    return { id, uploadId: upload.uploadId };
  }

  async uploadPart(
    tenantId: string,
    id: string,
    uploadId: string,
    partNumber: number,
    body: ReadableStream,
  ): Promise<R2UploadedPart> {
    const upload = this.#bucket.resumeMultipartUpload(uploadKey(tenantId, id), uploadId);
    return await upload.uploadPart(partNumber, body).catch((error: unknown) => {
      throw multipartError(error, uploadId);
    });
  }

  /** Completes a multipart upload; its ETag is no content hash, so the declared digest is checked at publish. */
  async completeMultipart(
    tenantId: string,
    id: string,
    uploadId: string,
    parts: R2UploadedPart[],
  ): Promise<StagedUpload> {
    const upload = this.#bucket.resumeMultipartUpload(uploadKey(tenantId, id), uploadId);
    await upload.complete(parts).catch((error: unknown) => {
      throw multipartError(error, uploadId);
    });
    const staged = await this.staged(tenantId, id);
    if (!staged) throw new AppError("internal_error", `upload ${id} vanished after completing`);
    return staged;
  }

  async abortMultipart(tenantId: string, id: string, uploadId: string): Promise<void> {
    await this.#bucket
      .resumeMultipartUpload(uploadKey(tenantId, id), uploadId)
      .abort()
      .catch((error: unknown) => {
        throw multipartError(error, uploadId);
      });
  }

  async staged(tenantId: string, id: string): Promise<StagedUpload | null> {
    const head = await this.#bucket.head(uploadKey(tenantId, id));
    const sha256 = head?.customMetadata?.sha256;
    if (!head || !sha256) return null;
    return { id, sha256, size: head.size };
  }

  /** Reads and checks the safetensors header of a staged upload with two range reads. */
  async readHeader(tenantId: string, upload: StagedUpload, file: string): Promise<SafetensorsHeader> {
    const key = uploadKey(tenantId, upload.id);
    const first = await this.#range(key, 0, Math.min(8, upload.size));
    const headerLength = readHeaderLength(first, file);
    if (headerLength > EDGE_MAX_HEADER_BYTES) {
      throw new AppError(
        "invalid_safetensors",
        `${file}: header size must be <= ${EDGE_MAX_HEADER_BYTES} bytes at the edge; got ${headerLength}`,
      );
    }
    const prefix = await this.#range(key, 0, Math.min(8 + headerLength, upload.size));
    return parseHeader(prefix, upload.size, file);
  }

  /**
   * Turns a validated upload into its content-addressed blob, proving the declared digest on the way: a new
   * blob is written by R2 with a sha256 check, an existing one is matched by hashing the staged bytes.
   * `inspect`, when given, sees every byte on the way and may refuse the file by erroring; R2 then stores
   * nothing, since a put whose body errors before its last byte writes no object.
   */
  async promote(
    tenantId: string,
    upload: StagedUpload,
    inspect?: TransformStream<Uint8Array, Uint8Array>,
  ): Promise<{ created: boolean }> {
    const key = uploadKey(tenantId, upload.id);
    const exists = (await this.#bucket.head(blobKey(upload.sha256))) !== null;
    const staged = await this.#bucket.get(key);
    if (!staged) throw new AppError("not_found", `upload ${upload.id} does not exist`, { param: "upload" });
    // Piped by hand rather than pipeThrough: each pipe's outcome is awaited here, so an inspector's refusal
    // is this call's error and never an unhandled rejection of a pipe nobody watches.
    const inspecting = inspect === undefined ? Promise.resolve() : staged.body.pipeTo(inspect.writable);
    const body = inspect === undefined ? staged.body : inspect.readable;
    if (exists) {
      const [inspected, hashed] = await Promise.allSettled([inspecting, sha256OfStream(body)]);
      if (inspected.status === "rejected") throw inspected.reason;
      if (hashed.status === "rejected") throw hashed.reason;
      if (hashed.value !== upload.sha256) throw digestMismatch("upload", upload.sha256);
      return { created: false };
    }
    const copy = new FixedLengthStream(staged.size);
    const [inspected, piped, put] = await Promise.allSettled([
      inspecting,
      body.pipeTo(copy.writable),
      this.#bucket.put(blobKey(upload.sha256), copy.readable, { sha256: upload.sha256 }),
    ]);
    // The inspector's refusal is the reason the put failed, whatever R2 made of the errored body.
    if (inspected.status === "rejected") throw inspected.reason;
    if (put.status === "rejected") {
      if (isBadDigest(put.reason)) throw digestMismatch("upload", upload.sha256);
      throw put.reason;
    }
    if (piped.status === "rejected") throw piped.reason;
    return { created: true };
  }

  /** The tenant's staged uploads (not blobs, not multipart uploads in flight), at most `limit` of them. */
  async listStaged(tenantId: string, limit: number): Promise<{ id: string; uploadedAt: number }[]> {
    const prefix = uploadKey(tenantId, "");
    const listed = await this.#bucket.list({ prefix, limit });
    return listed.objects.map((o) => ({ id: o.key.slice(prefix.length), uploadedAt: o.uploaded.getTime() }));
  }

  async discardUpload(tenantId: string, id: string): Promise<void> {
    await this.#bucket.delete(uploadKey(tenantId, id));
  }

  async deleteBlob(sha256: string): Promise<void> {
    await this.#bucket.delete(blobKey(sha256));
  }

  async blob(sha256: string): Promise<R2ObjectBody | null> {
    return await this.#bucket.get(blobKey(sha256));
  }

  async #range(key: string, offset: number, length: number): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array(0);
    const object = await this.#bucket.get(key, { range: { offset, length } });
    if (!object) throw new AppError("not_found", `upload object ${key} does not exist`, { param: "upload" });
    return new Uint8Array(await object.arrayBuffer());
  }
}

export async function sha256OfStream(stream: ReadableStream): Promise<string> {
  const digest = new crypto.DigestStream("SHA-256");
  // The digest rejects too when the stream errors: read both outcomes so neither goes unhandled.
  const [piped, hashed] = await Promise.allSettled([stream.pipeTo(digest), digest.digest]);
  if (piped.status === "rejected") throw piped.reason;
  if (hashed.status === "rejected") throw hashed.reason;
  return toHex(new Uint8Array(hashed.value));
}

function multipartError(error: unknown, uploadId: string): unknown {
  if (error instanceof Error && /multipart upload does not exist|10024/.test(error.message)) {
    return new AppError("not_found", `multipart upload ${uploadId} does not exist`, { param: "uploadId" });
  }
  if (error instanceof Error && error.message.includes("(10025)")) {
    // The edge checks every listed part against the ones it saw uploaded first, so this is rare: a part
    // re-uploaded while the upload was being completed.
    return new AppError(
      "invalid_request",
      "parts: R2 does not hold every listed part with its etag under this uploadId; upload them again",
      { param: "parts" },
    );
  }
  if (error instanceof Error && error.message.includes("(10011)")) {
    return new AppError(
      "invalid_request",
      `parts: every part but the last must be >= ${MIN_PART_BYTES} bytes`,
      {
        param: "parts",
      },
    );
  }
  return error;
}
