// PEFT's targeting and scaling rules, applied to a base model's linear modules. Mirrors
// peft/tuners/tuners_utils.py `check_target_module_exists`, utils/other.py `get_pattern_key` and
// tuners/lora/layer.py `update_layer` (scaling), so an adapter adapts exactly the modules PEFT would.
import type { BaseModelSpec, LinearModule } from "../contracts/base-model.ts";
import type { PeftLoraConfig } from "../contracts/peft-config.ts";
import { AppError } from "../errors.ts";

export interface EffectiveModule {
  module: string;
  rank: number;
  alpha: number;
  scale: number;
}

/** PEFT's default target modules for the families we serve (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
const DEFAULT_TARGETS = ["q_proj", "v_proj"];

const compiled = new Map<string, RegExp>();

/** Python regexes are JS regexes for what adapter configs use, bar named groups. Cached: called per module. */
function pyRegex(source: string, field: string, original = source): RegExp {
  const cached = compiled.get(source);
  if (cached !== undefined) return cached;
  try {
    const regex = new RegExp(source.replace(/\(\?P</g, "(?<"));
    if (compiled.size > 1000) compiled.clear();
    compiled.set(source, regex);
    return regex;
  } catch (error) {
    throw new AppError(
      "invalid_adapter",
      `adapter_config.json ${field}: ${JSON.stringify(original)} is not a valid regular expression (${(error as Error).message})`,
      { param: field },
    );
  }
}

function fullMatch(pattern: string, key: string, field: string): boolean {
  return pyRegex(`^(?:${pattern})$`, field, pattern).test(key);
}

/** `key in list` or a dotted-suffix match, as PEFT does for list-valued target/exclude modules. */
function listMatch(list: string[], key: string): boolean {
  return list.some((entry) => key === entry || key.endsWith(`.${entry}`));
}

function isExcluded(config: PeftLoraConfig, key: string): boolean {
  const exclude = config.exclude_modules;
  if (exclude === null || exclude.length === 0) return false;
  return typeof exclude === "string" ? fullMatch(exclude, key, "exclude_modules") : listMatch(exclude, key);
}

/** The layer index PEFT reads from a module path, or null when the path has none. */
function layerIndexOf(config: PeftLoraConfig, key: string): number | null {
  const patterns =
    config.layers_pattern === null || config.layers_pattern.length === 0
      ? null
      : typeof config.layers_pattern === "string"
        ? [config.layers_pattern]
        : config.layers_pattern;
  if (patterns === null) {
    const m = /^.*\.[^.]*\.(\d+)\./u.exec(key);
    return m ? Number(m[1]) : null;
  }
  for (const pattern of patterns) {
    const m = pyRegex(`^.*\\.${pattern}\\.(\\d+)\\.`, "layers_pattern", pattern).exec(key);
    if (m) return Number(m[1]);
  }
  return null;
}

function inLayers(config: PeftLoraConfig, key: string): boolean {
  const layers = config.layers_to_transform;
  if (layers === null || (Array.isArray(layers) && layers.length === 0)) return true;
  const index = layerIndexOf(config, key);
  if (index === null) return false;
  return typeof layers === "number" ? index === layers : layers.includes(index);
}

/** Whether PEFT would wrap this module. A string target is a regex; "all-linear" is every linear but the head. */
export function isTargeted(config: PeftLoraConfig, key: string): boolean {
  if (isExcluded(config, key)) return false;
  const targets = config.target_modules ?? DEFAULT_TARGETS;
  if (targets === "all-linear") return true;
  if (typeof targets === "string") return fullMatch(targets, key, "target_modules");
  if (targets.includes(key)) return true;
  // layers_to_transform only narrows suffix matches: an exact name in the list wins outright, as in PEFT.
  return listMatch(targets, key) && inLayers(config, key);
}

/** The first pattern key that matches `re.match(rf"(.*\.)?({key})$", name)`, in the dict's order. */
export function patternKey(patterns: Record<string, number>, name: string, field: string): string | null {
  for (const key of Object.keys(patterns)) {
    if (pyRegex(`^(?:.*\\.)?(?:${key})$`, field, key).test(name)) return key;
  }
  return null;
}

/** rank, alpha and scale of one module after rank_pattern / alpha_pattern and rsLoRA. */
export function effectiveFor(config: PeftLoraConfig, name: string): EffectiveModule {
  const rankKey = patternKey(config.rank_pattern, name, "rank_pattern");
  const alphaKey = patternKey(config.alpha_pattern, name, "alpha_pattern");
  const rank = rankKey === null ? config.r : (config.rank_pattern[rankKey] as number);
  const alpha = alphaKey === null ? config.lora_alpha : (config.alpha_pattern[alphaKey] as number);
  const scale = config.use_rslora ? alpha / Math.sqrt(rank) : alpha / rank;
  return { module: name, rank, alpha, scale };
}

/** Every module of the base that the config adapts, in the base's module order. */
export function effectiveModules(config: PeftLoraConfig, spec: BaseModelSpec): EffectiveModule[] {
  return targetedModules(config, spec).map((m) => effectiveFor(config, m.name));
}

export function targetedModules(config: PeftLoraConfig, spec: BaseModelSpec): LinearModule[] {
  return spec.modules.filter((m) => isTargeted(config, m.name));
}

/** LoraConfig.__post_init__'s layer checks (PEFT 0.21 accepts layers_to_transform 0 with a layers_pattern). */
function layerProblems(config: PeftLoraConfig): string[] {
  const layers = config.layers_to_transform;
  const problems: string[] = [];
  if (typeof config.target_modules === "string" && layers !== null) {
    problems.push("layers_to_transform cannot be used when target_modules is a string (PEFT refuses it)");
  }
  if (config.layers_pattern !== null && config.layers_pattern.length > 0 && layers === null) {
    problems.push(
      `layers_pattern ${JSON.stringify(config.layers_pattern)} needs layers_to_transform (PEFT refuses it)`,
    );
  }
  return problems;
}

/** Every module path that holds linears ("model", "model.layers.0", "model.layers.0.mlp", ...). */
function containerPaths(spec: BaseModelSpec): string[] {
  const paths = new Set<string>();
  for (const m of spec.modules) {
    const parts = m.name.split(".");
    for (let i = 1; i < parts.length; i++) paths.add(parts.slice(0, i).join("."));
  }
  return [...paths];
}

/**
 * Why PEFT itself would refuse to apply this config to the base: it matches a module that is not a linear
 * (PEFT raises "Target module ... is not supported"), or it matches nothing (NoMatchingPeftModuleError).
 */
export function targetingProblems(config: PeftLoraConfig, spec: BaseModelSpec): string[] {
  const targets = JSON.stringify(config.target_modules);
  const problems = layerProblems(config);
  if (config.target_modules !== "all-linear") {
    for (const path of containerPaths(spec)) {
      if (isTargeted(config, path)) {
        problems.push(
          `target_modules ${targets} matches ${path}, which is not a linear layer (PEFT refuses it)`,
        );
      }
    }
  }
  if (targetedModules(config, spec).length === 0) {
    problems.push(`target_modules ${targets} adapts no module of base "${spec.id}"`);
  }
  return problems;
}
