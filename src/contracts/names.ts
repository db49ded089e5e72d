// Names of adapters, aliases, tenants and routes, and the `model` reference grammar of the public API:
// `name` (latest version), `name@3` (a version), `name@prod` (an alias).
import { z } from "zod";
import { AppError } from "../errors.ts";

export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const NAME_RULE = "1..64 of a-z 0-9 . _ -, starting with a letter or digit";

export const NameSchema = z.string().regex(NAME_PATTERN, `must be ${NAME_RULE}`);
export const AdapterNameSchema = NameSchema;
export const AliasNameSchema = NameSchema.refine((v) => !/^\d+$/.test(v), {
  message: "must not be all digits (that would read as a version number)",
});
export const TenantNameSchema = NameSchema;
export const RouteNameSchema = NameSchema;

export function isValidName(value: string): boolean {
  return NAME_PATTERN.test(value);
}

export type ModelRef =
  | { kind: "version"; name: string; version: number }
  | { kind: "alias"; name: string; alias: string }
  | { kind: "latest"; name: string };

function badRef(model: string, rule: string): AppError {
  return new AppError("invalid_request", `model ${JSON.stringify(model)}: ${rule}`, { param: "model" });
}

/** Parses `name`, `name@3` or `name@prod`; errors name the part that is wrong. */
export function parseModelRef(model: string): ModelRef {
  const at = model.indexOf("@");
  const name = at === -1 ? model : model.slice(0, at);
  if (!isValidName(name)) {
    throw badRef(model, `name ${JSON.stringify(name)} must be ${NAME_RULE}`);
  }
  if (at === -1) return { kind: "latest", name };
  const suffix = model.slice(at + 1);
  if (/^\d+$/.test(suffix)) {
    const version = Number(suffix);
    if (!Number.isSafeInteger(version) || version < 1 || suffix.startsWith("0")) {
      throw badRef(
        model,
        `version must be an integer >= 1 without leading zeros; got ${JSON.stringify(suffix)}`,
      );
    }
    return { kind: "version", name, version };
  }
  if (!isValidName(suffix)) {
    throw badRef(
      model,
      `after "@" comes a version (1, 2, ...) or an alias (${NAME_RULE}); got ${JSON.stringify(suffix)}`,
    );
  }
  return { kind: "alias", name, alias: suffix };
}

/** The canonical text of a ref: inverse of parseModelRef. */
export function formatModelRef(ref: ModelRef): string {
  switch (ref.kind) {
    case "latest":
      return ref.name;
    case "version":
      return `${ref.name}@${ref.version}`;
    case "alias":
      return `${ref.name}@${ref.alias}`;
  }
}
