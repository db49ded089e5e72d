// Parsing of the experiment CLI's compact flags: `name=target:weight` lists and weights as basis points or
// percentages. Errors name the flag, the rule and the value.
import { AppError } from "../../src/errors.ts";

/** "9000" (basis points) or "90%" / "12.5%" (percent, at most two decimals). */
export function parseWeight(text: string, flag: string): number {
  const percent = /^(\d{1,3})(?:\.(\d{1,2}))?%$/.exec(text);
  if (percent) {
    const bp = Number(percent[1]) * 100 + Number((percent[2] ?? "").padEnd(2, "0"));
    if (bp <= 10_000) return bp;
  } else if (/^\d{1,5}$/.test(text) && Number(text) <= 10_000) {
    return Number(text);
  }
  throw new AppError(
    "invalid_request",
    `--${flag}: a weight is basis points 0..10000 or a percentage like 12.5%; got ${JSON.stringify(text)}`,
  );
}

export interface VariantArg {
  name: string;
  target: string;
  weight: number;
  shadow: boolean;
}

/** `control=support@prod:90%,treatment=support@2:10%`. */
export function parseVariants(text: string, flag: string, shadow: boolean): VariantArg[] {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")
    .map((part) => {
      const match = /^([^=]+)=(.+):([^:]+)$/.exec(part);
      if (!match) {
        throw new AppError(
          "invalid_request",
          `--${flag}: each entry is name=target:weight (e.g. treatment=support@2:10%); got ${JSON.stringify(part)}`,
        );
      }
      return {
        name: match[1] as string,
        target: match[2] as string,
        weight: parseWeight(match[3] as string, flag),
        shadow,
      };
    });
}

/** `control=80%,treatment=20%`. */
export function parseWeights(text: string, flag: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of text.split(",").map((p) => p.trim())) {
    const match = /^([^=]+)=(.+)$/.exec(part);
    if (!match) {
      throw new AppError(
        "invalid_request",
        `--${flag}: each entry is name=weight; got ${JSON.stringify(part)}`,
      );
    }
    out[match[1] as string] = parseWeight(match[2] as string, flag);
  }
  return out;
}

export function parseNumber(
  text: string | undefined,
  flag: string,
  min: number,
  max = Infinity,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new AppError(
      "invalid_request",
      `--${flag}: must be a number in [${min}, ${max}]; got ${JSON.stringify(text)}`,
    );
  }
  return n;
}
