// A small client for the edge's admin API, used by the publishing script and the trainer. Responses are parsed with the
// same schemas the edge answers with; refusals become EdgeError carrying the edge's own message.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { z } from "zod";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from "../src/adapters/peft-files.ts";
import {
  type BaseModelResponse,
  BaseModelResponseSchema,
  CreateMultipartResponseSchema,
  type PublishVersionRequest,
  UploadedPartSchema,
  type UploadResponse,
  UploadResponseSchema,
  type VersionResponse,
  VersionResponseSchema,
} from "../src/contracts/admin.ts";
import { type ErrorEnvelope, ErrorEnvelopeSchema } from "../src/contracts/openai.ts";

export class EdgeError extends Error {
  readonly status: number;
  readonly details: string[];
  /** The edge's error envelope as it answered, when it answered with one (a CLI's --json prints it). */
  readonly envelope: ErrorEnvelope | null;

  constructor(
    status: number,
    message: string,
    details: string[] = [],
    envelope: ErrorEnvelope | null = null,
  ) {
    super(message);
    this.name = "EdgeError";
    this.status = status;
    this.details = details;
    this.envelope = envelope;
  }
}

export interface EdgeClientOptions {
  endpoint: string;
  token: string;
  fetch?: typeof fetch;
}

export interface UploadOptions {
  path: string;
  sizeBytes: number;
  sha256: string;
  /** Files larger than this go through multipart upload. */
  multipartThreshold: number;
  partSize: number;
  onProgress?: (bytesSent: number) => void;
}

/** Reads an edge answer: parsed with `schema` on success, the edge's own message as an EdgeError otherwise. */
export async function parseEdgeAnswer<S extends z.ZodType>(
  res: Response,
  schema: S,
  what: string,
): Promise<z.output<S>> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new EdgeError(
      res.status,
      `${what}: the edge answered ${res.status} with non-JSON: ${text.slice(0, 200)}`,
    );
  }
  if (!res.ok) {
    const envelope = ErrorEnvelopeSchema.safeParse(body);
    if (envelope.success)
      throw new EdgeError(
        res.status,
        envelope.data.error.message,
        envelope.data.error.details,
        envelope.data,
      );
    throw new EdgeError(res.status, `${what}: the edge answered ${res.status}: ${text.slice(0, 200)}`);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success)
    throw new EdgeError(res.status, `${what}: unexpected answer from the edge (${parsed.error.message})`);
  return parsed.data;
}

/** Counts bytes as they stream out, for the progress bar. */
function counting(
  onProgress: ((sent: number) => void) | undefined,
  start = 0,
): TransformStream<Uint8Array, Uint8Array> {
  let sent = start;
  return new TransformStream({
    transform(chunk, controller) {
      sent += chunk.byteLength;
      onProgress?.(sent);
      controller.enqueue(chunk);
    },
  });
}

export interface DownloadedVersion {
  dir: string;
  sha256: string;
  sizeBytes: number;
}

const StoredConfigSchema = z.record(z.string(), z.unknown());
// GET /admin/adapters/{name}: only the version numbers are read here (yanked ones count: numbers are never reused)
const AdapterVersionsSchema = z.looseObject({
  versions: z.array(z.looseObject({ version: z.number().int().positive() })),
});

/** Streams a weights response into `path`, hashing on the way; the file appears only once its digest is proven. */
async function saveVerified(
  res: Response,
  path: string,
  what: string,
): Promise<Omit<DownloadedVersion, "dir">> {
  const declared = res.headers.get("x-content-sha256");
  if (res.body === null || declared === null)
    throw new EdgeError(res.status, `${what}: the edge answered without a body or x-content-sha256`);
  const hash = createHash("sha256");
  let size = 0;
  const partial = `${path}.partial`;
  await pipeline(
    Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>),
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.byteLength;
        yield chunk;
      }
    },
    createWriteStream(partial),
  );
  const actual = hash.digest("hex");
  if (actual !== declared) {
    await rm(partial, { force: true });
    throw new EdgeError(
      res.status,
      `${what}: downloaded ${size} bytes with sha256 ${actual}; the edge declared ${declared}`,
    );
  }
  await rename(partial, path);
  return { sha256: actual, sizeBytes: size };
}

/** `send(method, path, json?)` to the edge with the caller's key; a connection failure is EdgeError 0. */
export function createEdgeSender(options: EdgeClientOptions) {
  const base = options.endpoint.replace(/\/+$/, "");
  const doFetch = options.fetch ?? fetch;
  return async (method: string, path: string, body?: unknown): Promise<Response> => {
    try {
      return await doFetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${options.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new EdgeError(0, `cannot reach the edge at ${base}: ${(error as Error).message}`);
    }
  };
}

export function createEdgeClient(options: EdgeClientOptions) {
  const base = options.endpoint.replace(/\/+$/, "");
  const doFetch = options.fetch ?? fetch;
  const auth = { authorization: `Bearer ${options.token}` };
  const request = async (path: string, init: RequestInit & { duplex?: "half" }): Promise<Response> => {
    try {
      return await doFetch(`${base}${path}`, {
        ...init,
        headers: { ...auth, ...(init.headers as Record<string, string>) },
      });
    } catch (error) {
      throw new EdgeError(0, `cannot reach the edge at ${base}: ${(error as Error).message}`);
    }
  };
  const postJson = (path: string, body: unknown) =>
    request(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  async function uploadSingle(o: UploadOptions): Promise<UploadResponse> {
    const file = Readable.toWeb(createReadStream(o.path)) as ReadableStream<Uint8Array>;
    const res = await request("/admin/uploads", {
      method: "POST",
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(o.sizeBytes),
        "x-content-sha256": o.sha256,
      },
      body: file.pipeThrough(counting(o.onProgress)),
      duplex: "half",
    });
    return await parseEdgeAnswer(res, UploadResponseSchema, "upload");
  }

  async function uploadMultipart(o: UploadOptions): Promise<UploadResponse> {
    const created = await parseEdgeAnswer(
      await postJson("/admin/uploads/multipart", { sha256: o.sha256 }),
      CreateMultipartResponseSchema,
      "multipart create",
    );
    const query = `uploadId=${encodeURIComponent(created.uploadId)}`;
    const handle = await open(o.path, "r");
    const parts: z.infer<typeof UploadedPartSchema>[] = [];
    try {
      for (let offset = 0, n = 1; offset < o.sizeBytes; offset += o.partSize, n++) {
        // One part in memory at a time: parts are bounded, the file is not.
        const chunk = new Uint8Array(Math.min(o.partSize, o.sizeBytes - offset));
        await handle.read(chunk, 0, chunk.length, offset);
        const res = await request(`/admin/uploads/${created.upload}/parts/${n}?${query}`, {
          method: "PUT",
          headers: { "content-type": "application/octet-stream" },
          body: chunk,
        });
        parts.push(await parseEdgeAnswer(res, UploadedPartSchema, `part ${n}`));
        o.onProgress?.(offset + chunk.length);
      }
    } catch (error) {
      await request(`/admin/uploads/${created.upload}?${query}`, { method: "DELETE" }).catch(() => undefined);
      throw error;
    } finally {
      await handle.close();
    }
    const done = await postJson(`/admin/uploads/${created.upload}/complete`, {
      uploadId: created.uploadId,
      parts,
    });
    return await parseEdgeAnswer(done, UploadResponseSchema, "multipart complete");
  }

  return {
    /**
     * Writes a published version's adapter_config.json and adapter_model.safetensors into `dir` (a PEFT
     * directory), the weights streamed to disk and checked against the sha256 the registry holds.
     */
    async downloadVersion(name: string, version: number, dir: string): Promise<DownloadedVersion> {
      const what = `${name}@${version}`;
      const files = `/admin/adapters/${encodeURIComponent(name)}/versions/${version}/files`;
      const config = await parseEdgeAnswer(
        await request(`${files}/adapter_config.json`, { method: "GET" }),
        StoredConfigSchema,
        `${what} adapter_config.json`,
      );
      const res = await request(`${files}/adapter_model.safetensors`, { method: "GET" });
      if (!res.ok) await parseEdgeAnswer(res, z.never(), `${what} adapter_model.safetensors`);
      await mkdir(dir, { recursive: true });
      const saved = await saveVerified(res, join(dir, PEFT_WEIGHTS_FILE), what);
      await writeFile(join(dir, PEFT_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
      return { ...saved, dir };
    },
    /** The number the edge gives the next version of `name` (1 for a new adapter), as of now. */
    async nextVersion(name: string): Promise<number> {
      const res = await request(`/admin/adapters/${encodeURIComponent(name)}`, { method: "GET" });
      if (res.status === 404) {
        await res.body?.cancel();
        return 1;
      }
      const { versions } = await parseEdgeAnswer(res, AdapterVersionsSchema, "adapter");
      return versions.reduce((max, v) => Math.max(max, v.version), 0) + 1;
    },
    async baseModel(id: string): Promise<BaseModelResponse> {
      return await parseEdgeAnswer(
        await request(`/admin/base-models/${id}`, { method: "GET" }),
        BaseModelResponseSchema,
        "base model",
      );
    },
    upload(o: UploadOptions): Promise<UploadResponse> {
      return o.sizeBytes > o.multipartThreshold ? uploadMultipart(o) : uploadSingle(o);
    },
    async publish(name: string, body: PublishVersionRequest): Promise<VersionResponse> {
      return await parseEdgeAnswer(
        await postJson(`/admin/adapters/${name}/versions`, body),
        VersionResponseSchema,
        "publish",
      );
    },
  };
}

export type EdgeClient = ReturnType<typeof createEdgeClient>;
