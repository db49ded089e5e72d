// Small helpers shared by the D1 stores: rows are parsed with zod, never cast
// (docs/conventions.md#contracts).
import type { z } from "zod";
import { AppError } from "../../../src/errors.ts";

export function parseRow<S extends z.ZodType>(schema: S, row: unknown, table: string): z.output<S> {
  const parsed = schema.safeParse(row);
  if (!parsed.success) {
    throw new AppError(
      "internal_error",
      `${table}: stored row does not match its schema (${parsed.error.message})`,
    );
  }
  return parsed.data;
}

export function parseRows<S extends z.ZodType>(schema: S, rows: unknown[], table: string): z.output<S>[] {
  return rows.map((row) => parseRow(schema, row, table));
}

export function isUniqueViolation(error: unknown): boolean {
  return error instanceof Error && /UNIQUE constraint failed/i.test(error.message);
}

export function nowIso(): string {
  return new Date().toISOString();
}
