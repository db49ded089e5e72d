// Base models in D1. They are global: the runner pool serves them, so the operator registers them and every
// tenant may read them. A registered base never changes shape, because adapters were validated against it.
import { z } from "zod";
import { type BaseModelSpec, BaseModelSpecSchema } from "../../../src/contracts/base-model.ts";
import { AppError } from "../../../src/errors.ts";
import { nowIso, parseRow, parseRows } from "../common/d1.ts";
import { announce } from "../common/invalidation.ts";

const BaseModelRowSchema = z.object({
  id: z.string(),
  spec: z
    .string()
    .transform((text) => JSON.parse(text) as unknown)
    .pipe(BaseModelSpecSchema),
  created_at: z.string(),
});

export interface StoredBaseModel {
  spec: BaseModelSpec;
  createdAt: string;
}

export class BaseModelStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /** Registers a base model; registering the same shape again is a no-op, a different shape a conflict. */
  async register(spec: BaseModelSpec): Promise<{ model: StoredBaseModel; created: boolean }> {
    const createdAt = nowIso();
    const inserted = await this.#db
      .prepare(
        `INSERT INTO base_models (id, spec, fingerprint, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING`,
      )
      .bind(spec.id, JSON.stringify(spec), spec.fingerprint, createdAt)
      .run();
    if (inserted.meta.changes === 1) {
      // The isolate's cached set says this id is no base; requests through it must see the new one now.
      announce({ kind: "base_models" });
      return { model: { spec, createdAt }, created: true };
    }
    const existing = await this.get(spec.id);
    if (existing === null) throw new AppError("internal_error", `base model ${spec.id} vanished`);
    if (existing.spec.fingerprint !== spec.fingerprint) {
      throw new AppError(
        "conflict",
        `base model ${JSON.stringify(spec.id)} is registered with fingerprint ${existing.spec.fingerprint}; ` +
          `this config.json has ${spec.fingerprint}. Register the new shape under a new id.`,
        { param: "id" },
      );
    }
    return { model: existing, created: false };
  }

  async get(id: string): Promise<StoredBaseModel | null> {
    const raw = await this.#db.prepare("SELECT * FROM base_models WHERE id = ?").bind(id).first();
    if (raw === null) return null;
    const row = parseRow(BaseModelRowSchema, raw, "base_models");
    return { spec: row.spec, createdAt: row.created_at };
  }

  /** Every base model by id: what the hot path caches (registry/model-cache.ts), hits and misses alike. */
  async byId(): Promise<Map<string, StoredBaseModel>> {
    return new Map((await this.list()).map((model) => [model.spec.id, model]));
  }

  async list(): Promise<StoredBaseModel[]> {
    const { results } = await this.#db.prepare("SELECT * FROM base_models ORDER BY id").all();
    return parseRows(BaseModelRowSchema, results, "base_models").map((row) => ({
      spec: row.spec,
      createdAt: row.created_at,
    }));
  }
}
