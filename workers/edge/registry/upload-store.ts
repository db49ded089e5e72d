// What D1 knows about uploads: which staged upload a publish has claimed, and which multipart uploads are in
// flight with the parts each has received. The bytes live in R2 (blob-store.ts); these rows let the edge
// consume an upload exactly once and answer multipart mistakes by name. Every query is scoped by tenant.
import { z } from "zod";
import { nowIso, parseRow, parseRows } from "../common/d1.ts";

const MultipartRowSchema = z.object({ upload_id: z.string() });
const PartRowSchema = z.object({ part_number: z.number().int(), etag: z.string() });
const ClaimRowSchema = z.object({ upload: z.string(), claimed_at: z.string() });
const OpenRowSchema = z.object({ upload: z.string(), upload_id: z.string(), created_at: z.string() });

export class UploadStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /**
   * Claims a staged upload for one publish: true for the first caller, false for every later one. One
   * conditional insert, so of any number of racing publishes exactly one gets true.
   */
  async claim(tenant: string, upload: string): Promise<boolean> {
    const inserted = await this.#db
      .prepare(
        `INSERT INTO upload_claims (tenant, upload, claimed_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant, upload) DO NOTHING`,
      )
      .bind(tenant, upload, nowIso())
      .run();
    return inserted.meta.changes === 1;
  }

  /** When each of these uploads was claimed (by a publish or a sweep); uploads never claimed are absent. */
  async claimTimes(tenant: string, uploads: string[]): Promise<Map<string, string>> {
    if (uploads.length === 0) return new Map();
    const { results } = await this.#db
      .prepare(
        "SELECT upload, claimed_at FROM upload_claims WHERE tenant = ?1 AND upload IN (SELECT value FROM json_each(?2))",
      )
      .bind(tenant, JSON.stringify(uploads))
      .all();
    return new Map(parseRows(ClaimRowSchema, results, "upload_claims").map((r) => [r.upload, r.claimed_at]));
  }

  /** Multipart uploads of this tenant opened before `before` and neither completed nor aborted, oldest first. */
  async openedBefore(
    tenant: string,
    before: string,
    limit: number,
  ): Promise<{ upload: string; uploadId: string }[]> {
    const { results } = await this.#db
      .prepare(
        "SELECT upload, upload_id, created_at FROM multipart_uploads WHERE tenant = ? AND created_at < ? ORDER BY created_at LIMIT ?",
      )
      .bind(tenant, before, limit)
      .all();
    return parseRows(OpenRowSchema, results, "multipart_uploads").map((r) => ({
      upload: r.upload,
      uploadId: r.upload_id,
    }));
  }

  async openMultipart(tenant: string, upload: string, uploadId: string): Promise<void> {
    await this.#db
      .prepare("INSERT INTO multipart_uploads (tenant, upload, upload_id, created_at) VALUES (?, ?, ?, ?)")
      .bind(tenant, upload, uploadId, nowIso())
      .run();
  }

  /** Whether `uploadId` is the open multipart upload `upload` of this tenant. */
  async isOpen(tenant: string, upload: string, uploadId: string): Promise<boolean> {
    const raw = await this.#db
      .prepare("SELECT upload_id FROM multipart_uploads WHERE tenant = ? AND upload = ?")
      .bind(tenant, upload)
      .first();
    return raw !== null && parseRow(MultipartRowSchema, raw, "multipart_uploads").upload_id === uploadId;
  }

  /** Records an uploaded part; uploading a part number again replaces it, as in R2. */
  async recordPart(tenant: string, upload: string, partNumber: number, etag: string): Promise<void> {
    await this.#db
      .prepare(
        `INSERT INTO multipart_parts (tenant, upload, part_number, etag, uploaded_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant, upload, part_number) DO UPDATE SET etag = excluded.etag, uploaded_at = excluded.uploaded_at`,
      )
      .bind(tenant, upload, partNumber, etag, nowIso())
      .run();
  }

  /** The etag each uploaded part number answered with. */
  async parts(tenant: string, upload: string): Promise<Map<number, string>> {
    const { results } = await this.#db
      .prepare(
        "SELECT part_number, etag FROM multipart_parts WHERE tenant = ? AND upload = ? ORDER BY part_number",
      )
      .bind(tenant, upload)
      .all();
    return new Map(parseRows(PartRowSchema, results, "multipart_parts").map((p) => [p.part_number, p.etag]));
  }

  /** Forgets a multipart upload once it completed or was aborted. */
  async closeMultipart(tenant: string, upload: string): Promise<void> {
    await this.#db.batch([
      this.#db.prepare("DELETE FROM multipart_parts WHERE tenant = ? AND upload = ?").bind(tenant, upload),
      this.#db.prepare("DELETE FROM multipart_uploads WHERE tenant = ? AND upload = ?").bind(tenant, upload),
    ]);
  }
}
