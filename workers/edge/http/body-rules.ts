// What a request body may be, per route: its size limit and its media type. The limits are exported from here
// alone, so the README and the tests state the same numbers the edge enforces. Refusals are caller mistakes in
// the OpenAI envelope: 413 payload_too_large, 415 unsupported_media_type (docs/conventions.md#errors).
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import { AppError } from "../../../src/errors.ts";
import type { EdgeEnv } from "../env.ts";

const MiB = 1024 * 1024;

export const BODY_LIMITS = {
  /** POST /v1/* (chat and text completions, feedback): a long prompt is a few hundred KiB of JSON. */
  inference: 4 * MiB,
  /** Every other /admin/* and /console/* body: configs, aliases, routes, keys, forms. */
  admin: 1 * MiB,
  /**
   * POST /admin/uploads, one file in one body: the CLI uploads files up to this size whole and larger ones in
   * parts (scripts/publish-adapter.ts --multipart-mib), and it stays under every Workers plan's body limit.
   */
  upload: 64 * MiB,
  /** PUT /admin/uploads/:upload/parts/:part, one part of a multipart upload (R2 wants >= 5 MiB but the last). */
  uploadPart: 64 * MiB,
  /**
   * An upload or part body sent without Content-Length: it is counted by reading it into memory (R2 only
   * stores bodies of known length), so it is held to less than an isolate's 128 MB can spare.
   */
  unsizedUpload: 16 * MiB,
} as const;

type BodyKind = "json" | "bytes" | "form";

interface BodyRule {
  kind: BodyKind;
  limit: number;
  /** What the limit is called in a refusal. */
  what: string;
}

const UPLOAD = /^\/admin\/uploads\/?$/;
const UPLOAD_PART = /^\/admin\/uploads\/[^/]+\/parts\/[^/]+\/?$/;

/** The rule for a request's body; the routes that take raw bytes are the two upload routes. */
export function bodyRuleFor(method: string, path: string): BodyRule | null {
  if (method === "POST" && UPLOAD.test(path)) {
    return { kind: "bytes", limit: BODY_LIMITS.upload, what: "an upload (larger files upload in parts)" };
  }
  if (method === "PUT" && UPLOAD_PART.test(path)) {
    return { kind: "bytes", limit: BODY_LIMITS.uploadPart, what: "one part of a multipart upload" };
  }
  if (path.startsWith("/v1/"))
    return { kind: "json", limit: BODY_LIMITS.inference, what: "an inference request" };
  if (path.startsWith("/admin/")) return { kind: "json", limit: BODY_LIMITS.admin, what: "an admin request" };
  if (path.startsWith("/console/")) return { kind: "form", limit: BODY_LIMITS.admin, what: "a console form" };
  return null;
}

function mib(bytes: number): string {
  return `${bytes / MiB} MiB`;
}

function tooLarge(rule: BodyRule, limit: number, declared: string | undefined): AppError {
  const got = declared === undefined ? `a body over ${limit} bytes` : `Content-Length ${declared}`;
  const unsized =
    declared === undefined && limit < rule.limit ? `; send Content-Length for up to ${mib(rule.limit)}` : "";
  return new AppError(
    "payload_too_large",
    `request body: must be <= ${limit} bytes (${mib(limit)}) for ${rule.what}; got ${got}${unsized}`,
  );
}

/** The same media types Hono's json validator reads: `application/json` and `application/<x>+json`. */
export function isJsonMediaType(contentType: string | undefined): boolean {
  const media = contentType?.split(";")[0]?.trim() ?? "";
  return /^application\/([\w.-]+\+)?json$/i.test(media);
}

function hasBody(c: Context<EdgeEnv>): boolean {
  return c.req.raw.body !== null && c.req.header("content-length") !== "0";
}

/**
 * Refuses a body over its route's limit before a handler reads it: by Content-Length without reading when the
 * request has one, else by counting as Hono's body-limit middleware reads it.
 */
export const limitBodies = createMiddleware<EdgeEnv>(async (c, next) => {
  const rule = bodyRuleFor(c.req.method, c.req.path);
  if (rule === null) return await next();
  const declared = c.req.header("content-length");
  const limit = rule.kind === "bytes" && declared === undefined ? BODY_LIMITS.unsizedUpload : rule.limit;
  const check = bodyLimit({
    maxSize: limit,
    onError: () => {
      throw tooLarge(rule, limit, declared);
    },
  });
  return await check(c, next);
});

/**
 * Refuses a JSON route's body that is not JSON by its Content-Type, before a validator reads it as empty and
 * reports every field missing.
 */
export const requireJsonBodies = createMiddleware<EdgeEnv>(async (c, next) => {
  const rule = bodyRuleFor(c.req.method, c.req.path);
  const method = c.req.method;
  if (rule?.kind === "json" && (method === "POST" || method === "PUT" || method === "PATCH") && hasBody(c)) {
    const type = c.req.header("content-type");
    if (!isJsonMediaType(type)) {
      throw new AppError(
        "unsupported_media_type",
        `Content-Type: must be application/json for ${method} ${c.req.path}; got ${type === undefined ? "none" : JSON.stringify(type)}`,
        { param: "Content-Type" },
      );
    }
  }
  await next();
});
