// PEFT's targeting and scaling rules, applied to a base model's linear modules. Mirrors
// peft/tuners/tuners_utils.py `check_target_module_exists`, utils/other.py `get_pattern_key` and
// tuners/lora/layer.py `update_layer` (scaling), so an adapter adapts exactly the modules PEFT would.
import type { Architecture, BaseModelSpec, LinearModule } from "../contracts/base-model.ts";
import type { PeftLoraConfig } from "../contracts/peft-config.ts";
import { AppError } from "../errors.ts";
import { checkPattern, fullMatch, layerIndexText, type PatternUse, patternKeyMatches } from "./peft-regex.ts";

export interface EffectiveModule {
  module: string;
  rank: number;
  alpha: number;
  scale: number;
}

/** PEFT's default target modules for the families we serve (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
const DEFAULT_TARGETS: Record<Architecture, string[]> = {
  llama: ["q_proj", "v_proj"],
  mistral: ["q_proj", "v_proj"],
  qwen2: ["q_proj", "v_proj"],
  qwen3: ["q_proj", "v_proj"],
  gemma2: ["q_proj", "v_proj"],
  gemma3_text: ["q_proj", "v_proj"],
  phi3: ["qkv_proj"],
};

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
    const index = layerIndexText(pattern, key, "layers_pattern");
    if (index !== null) return Number(index);
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

/**
 * Whether PEFT would wrap this module of a base of family `architecture` (whose default targets apply when
 * the config names none). A string target is a regex; "all-linear" is every linear but the head, Phi-3's
 * fused qkv_proj and gate_up_proj included.
 */
export function isTargeted(config: PeftLoraConfig, key: string, architecture: Architecture): boolean {
  if (isExcluded(config, key)) return false;
  const targets = config.target_modules ?? DEFAULT_TARGETS[architecture];
  if (targets === "all-linear") return true;
  if (typeof targets === "string") return fullMatch(targets, key, "target_modules");
  if (targets.includes(key)) return true;
  // layers_to_transform only narrows suffix matches: an exact name in the list wins outright, as in PEFT.
  return listMatch(targets, key) && inLayers(config, key);
}

/** The first pattern key that matches `re.match(rf"(.*\.)?({key})$", name)`, in the dict's order. */
export function patternKey(patterns: Record<string, number>, name: string, field: string): string | null {
  for (const key of Object.keys(patterns)) {
    if (patternKeyMatches(key, name, field)) return key;
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
  return spec.modules.filter((m) => isTargeted(config, m.name, spec.architecture));
}

/** Every regex the config holds, with the field that holds it and how PEFT matches it. */
function patternsOf(config: PeftLoraConfig): Array<[string, string, PatternUse]> {
  const out: Array<[string, string, PatternUse]> = [];
  if (typeof config.target_modules === "string" && config.target_modules !== "all-linear") {
    out.push([config.target_modules, "target_modules", "fullmatch"]);
  }
  if (typeof config.exclude_modules === "string" && config.exclude_modules.length > 0) {
    out.push([config.exclude_modules, "exclude_modules", "fullmatch"]);
  }
  const layers = config.layers_pattern;
  for (const pattern of typeof layers === "string" ? [layers].filter((l) => l !== "") : (layers ?? [])) {
    out.push([pattern, "layers_pattern", "layer_index"]);
  }
  for (const key of Object.keys(config.rank_pattern)) out.push([key, "rank_pattern", "pattern_key"]);
  for (const key of Object.keys(config.alpha_pattern)) out.push([key, "alpha_pattern", "pattern_key"]);
  return out;
}

/**
 * One message per regex that cannot be matched (invalid, unsupported, too long), each already naming
 * adapter_config.json and the field, so a publisher sees every bad pattern at once.
 */
export function patternProblems(config: PeftLoraConfig): string[] {
  const problems: string[] = [];
  for (const [pattern, field, use] of patternsOf(config)) {
    try {
      checkPattern(pattern, field, use);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      problems.push(error.message);
    }
  }
  return problems;
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
      if (isTargeted(config, path, spec.architecture)) {
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
