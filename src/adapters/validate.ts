// Checks a PEFT LoRA adapter against its base model at publish time, so nothing invalid is ever
// stored or served (docs/architecture.md#invariants). Every problem is
// collected before reporting, so a publisher fixes them in one round (vLLM's `_validate_features`).
import type { BaseModelSpec, LinearModule } from "../contracts/base-model.ts";
import { formatIssues, problemsError } from "../contracts/issues.ts";
import { type PeftLoraConfig, PeftLoraConfigSchema } from "../contracts/peft-config.ts";
import { canonicalJson, sha256Hex } from "../crypto.ts";
import { AppError } from "../errors.ts";
import type { SafetensorsFile, SafetensorsHeader, TensorInfo } from "../safetensors.ts";
import { unsupportedFeatures } from "./features.ts";
import { nonFiniteProblems } from "./finite-weights.ts";
import {
  type EffectiveModule,
  effectiveFor,
  isTargeted,
  patternProblems,
  targetingProblems,
} from "./peft.ts";

/**
 * The widest rank accepted when nothing narrower is configured, and the runner's default --max-lora-rank: an
 * adapter the edge accepts by default is one a default runner can load.
 */
export const DEFAULT_MAX_RANK = 64;
export type AdapterDtype = "F32" | "F16" | "BF16";
const FLOAT_DTYPES: readonly string[] = ["F32", "F16", "BF16"];

export interface ValidatedModule extends EffectiveModule {
  /** Tensor names as they appear in the file. A: [rank, inFeatures], B: [outFeatures, rank]. */
  keyA: string;
  keyB: string;
  inFeatures: number;
  outFeatures: number;
}

export interface ValidatedAdapter {
  config: PeftLoraConfig;
  dtype: AdapterDtype;
  modules: ValidatedModule[];
}

export interface ValidateAdapterInput {
  name?: string;
  config: unknown;
  /** The weights' header; a whole file (with its bytes) also has its values checked for NaN and Inf. */
  header: SafetensorsHeader | SafetensorsFile;
  spec: BaseModelSpec;
  maxRank?: number;
}

interface LoraPair {
  a?: TensorInfo;
  b?: TensorInfo;
}

/** Strips PEFT's `base_model.model.` prefix and the `.default` adapter name some tools leave in. */
export function normaliseKey(key: string): string {
  const bare = key.startsWith("base_model.model.") ? key.slice("base_model.model.".length) : key;
  return bare.replace(/\.lora_([AB])\.default\.weight$/, ".lora_$1.weight");
}

function parseConfig(raw: unknown, problems: string[]): PeftLoraConfig | null {
  const parsed = PeftLoraConfigSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    problems.push(...formatIssues(parsed.error).map((p) => `adapter_config.json ${p}`));
    return null;
  }
  const c = parsed.data;
  problems.push(...alphaProblems(c));
  return c;
}

/**
 * A scale of alpha / r that is 0 or negative silences or inverts the adapter: never what was trained, so it
 * is refused with the other config mistakes.
 */
function alphaProblems(c: PeftLoraConfig): string[] {
  const problems: string[] = [];
  if (!(c.lora_alpha > 0)) problems.push(`adapter_config.json lora_alpha: must be > 0; got ${c.lora_alpha}`);
  for (const [key, alpha] of Object.entries(c.alpha_pattern)) {
    if (!(alpha > 0)) {
      problems.push(`adapter_config.json alpha_pattern[${JSON.stringify(key)}]: must be > 0; got ${alpha}`);
    }
  }
  return problems;
}

/** Groups the file's tensors by base module; reports keys that are not LoRA weights of a base module. */
function indexTensors(
  header: SafetensorsHeader,
  spec: BaseModelSpec,
  problems: string[],
): Map<string, LoraPair> {
  const modules = new Set(spec.modules.map((m) => m.name));
  const pairs = new Map<string, LoraPair>();
  let magnitudeKeys = 0;
  for (const t of header.tensors) {
    const key = normaliseKey(t.name);
    if (/\.lora_magnitude_vector(\.|$)/.test(key)) {
      magnitudeKeys++;
      continue;
    }
    const match = /^(.+)\.lora_([AB])\.weight$/.exec(key);
    if (match === null) {
      problems.push(
        `key "${t.name}" is not a LoRA weight (expected <module>.lora_A.weight or <module>.lora_B.weight)`,
      );
      continue;
    }
    const [, module = "", side] = match;
    if (!modules.has(module)) {
      problems.push(`key "${t.name}" matches no module of base "${spec.id}"`);
      continue;
    }
    const pair = pairs.get(module) ?? {};
    const slot = side === "A" ? "a" : "b";
    if (pair[slot] !== undefined) problems.push(`key "${t.name}" duplicates "${pair[slot].name}"`);
    else pair[slot] = t;
    pairs.set(module, pair);
  }
  if (magnitudeKeys > 0) {
    problems.push(
      `${magnitudeKeys} lora_magnitude_vector tensors: DoRA is not supported (it is not additive)`,
    );
  }
  return pairs;
}

/** The one float dtype of the file. Mixed or non-float dtypes are problems. */
function fileDtype(header: SafetensorsHeader, problems: string[]): AdapterDtype {
  const seen = new Set<string>();
  for (const t of header.tensors) {
    if (!FLOAT_DTYPES.includes(t.dtype))
      problems.push(`tensor "${t.name}" has dtype ${t.dtype}; must be F32, F16 or BF16`);
    else seen.add(t.dtype);
  }
  if (seen.size > 1) problems.push(`tensors mix dtypes ${[...seen].join(", ")}; all must share one dtype`);
  return ([...seen][0] ?? "F32") as AdapterDtype;
}

function shapeProblems(
  m: LinearModule,
  pair: Required<LoraPair>,
  rank: number,
  label: string,
  base: string,
): string[] {
  const problems: string[] = [];
  const [rA, inA] = pair.a.shape;
  const [outB, rB] = pair.b.shape;
  if (pair.a.shape.length !== 2)
    problems.push(`${m.name} lora_A must be 2-D [r, in]; got ${JSON.stringify(pair.a.shape)}`);
  else if (inA !== m.inFeatures) {
    problems.push(`${label} targets ${m.name} with in_features ${inA}; base "${base}" has ${m.inFeatures}`);
  }
  if (pair.b.shape.length !== 2)
    problems.push(`${m.name} lora_B must be 2-D [out, r]; got ${JSON.stringify(pair.b.shape)}`);
  else if (outB !== m.outFeatures) {
    problems.push(
      `${label} targets ${m.name} with out_features ${outB}; base "${base}" has ${m.outFeatures}`,
    );
  }
  if (pair.a.shape.length === 2 && rA !== rank) {
    problems.push(
      `${m.name} lora_A has rank ${rA}; adapter_config.json gives r = ${rank} (r / rank_pattern)`,
    );
  }
  if (pair.b.shape.length === 2 && rB !== rank) {
    problems.push(
      `${m.name} lora_B has rank ${rB}; adapter_config.json gives r = ${rank} (r / rank_pattern)`,
    );
  }
  return problems;
}

function checkModules(
  config: PeftLoraConfig,
  input: ValidateAdapterInput,
  pairs: Map<string, LoraPair>,
  label: string,
  problems: string[],
): ValidatedModule[] {
  const { spec } = input;
  const maxRank = input.maxRank ?? DEFAULT_MAX_RANK;
  const out: ValidatedModule[] = [];
  for (const m of spec.modules) {
    const pair = pairs.get(m.name);
    if (!isTargeted(config, m.name, spec.architecture)) {
      if (pair) problems.push(`file has weights for ${m.name}, which adapter_config.json does not target`);
      continue;
    }
    const eff = effectiveFor(config, m.name);
    if (eff.rank > maxRank) problems.push(`${m.name} rank ${eff.rank} must be <= ${maxRank}`);
    if (pair?.a === undefined || pair.b === undefined) {
      const missing = [pair?.a ? null : "lora_A", pair?.b ? null : "lora_B"].filter((x) => x !== null);
      problems.push(
        `${m.name} is targeted by adapter_config.json but the file has no ${missing.join(" or ")} weight`,
      );
      continue;
    }
    const before = problems.length;
    problems.push(...shapeProblems(m, pair as Required<LoraPair>, eff.rank, label, spec.id));
    if (problems.length > before) continue;
    out.push({
      ...eff,
      keyA: pair.a.name,
      keyB: pair.b.name,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
    });
  }
  return out;
}

/**
 * Bad regexes (invalid, unsupported, too long) are more problems, not an early exit; every one is reported,
 * and targeting, which would need them, is skipped.
 */
function targetedOrProblem(...args: Parameters<typeof checkModules>): ValidatedModule[] {
  const patterns = patternProblems(args[0]);
  if (patterns.length > 0) {
    args[4].push(...patterns);
    return [];
  }
  try {
    args[4].push(...targetingProblems(args[0], args[1].spec).map((p) => `adapter_config.json ${p}`));
    return checkModules(...args);
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    args[4].push(error.message);
    return [];
  }
}

/**
 * Validates an adapter against its base; throws invalid_adapter listing every problem. Given the whole file
 * (the runner, readPeftDir), it also refuses NaN and Inf weights; given only a header (the edge, whose
 * weights stay in R2), the caller scans the values itself with finite-weights.ts if it can.
 */
export function validateAdapter(input: ValidateAdapterInput): ValidatedAdapter {
  const label = input.name ? `adapter "${input.name}"` : "adapter";
  const problems: string[] = [];
  const config = parseConfig(input.config, problems);
  problems.push(...unsupportedFeatures(input.config).map((p) => `adapter_config.json ${p}`));
  const pairs = indexTensors(input.header, input.spec, problems);
  const dtype = fileDtype(input.header, problems);
  if ("bytes" in input.header) problems.push(...nonFiniteProblems(input.header));
  const modules = config ? targetedOrProblem(config, input, pairs, label, problems) : [];
  if (problems.length > 0 || config === null) {
    const prefixed = problems.map((p) => (p.startsWith(`${label} `) ? p : `${label}: ${p}`));
    throw problemsError("invalid_adapter", prefixed);
  }
  return { config, dtype, modules };
}

/**
 * What the runner caches by, so a cached adapter is never served for different content
 * (docs/architecture.md#invariants): the weights' digest plus every config fact that changes
 * outputs. Modules are sorted so the id does not depend on the order a spec lists them in.
 */
export async function adapterId(weightsSha256: string, adapter: ValidatedAdapter): Promise<string> {
  const modules = adapter.modules
    .map((m) => ({ module: m.module, rank: m.rank, scale: m.scale }))
    .sort((x, y) => (x.module < y.module ? -1 : x.module > y.module ? 1 : 0));
  return sha256Hex(
    `${weightsSha256}:${canonicalJson({ fan_in_fan_out: adapter.config.fan_in_fan_out, modules })}`,
  );
}

/** PEFT's legacy pickle format can run code when loaded: refuse it before reading a byte. */
export function refusePickle(fileName: string): void {
  const base = fileName.split(/[\\/]/).pop() ?? fileName;
  if (/\.(bin|pt|pth|pkl|pickle|ckpt)$/i.test(base)) {
    throw new AppError(
      "invalid_adapter",
      `${base} is a pickle file, which can run code when loaded; convert it to adapter_model.safetensors (peft: model.save_pretrained(dir, safe_serialization=True))`,
      { param: "file" },
    );
  }
}
