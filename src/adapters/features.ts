// PEFT features that are not an additive `x·Aᵀ·Bᵀ·s` on a linear of the unchanged base:
// serving them as plain LoRA would silently give wrong outputs, so each is refused by name with the reason.
// Read from the raw config so they are reported even when other fields fail to parse.

type Raw = Record<string, unknown>;

interface FeatureRule {
  field: string;
  /** The message tail when the raw value is unsupported, or null when it is fine. */
  check: (value: unknown) => string | null;
}

const nonEmpty = (v: unknown) =>
  v != null &&
  v !== false &&
  !(Array.isArray(v) && v.length === 0) &&
  !(typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0);
const shown = (v: unknown) => JSON.stringify(v);

/** init_lora_weights schemes that rewrite the base weights (PiSSA, OLoRA, CorDA) or need them (LoftQ, EVA). */
const INIT_SCHEMES: Array<[RegExp, string]> = [
  [/^pissa/i, "PiSSA"],
  [/^olora$/i, "OLoRA"],
  [/^loftq$/i, "LoftQ"],
  [/^eva$/i, "EVA"],
  [/^corda$/i, "CorDA"],
  [/^lora_ga$/i, "LoRA-GA"],
];

/** PEFT 0.21 LoRA variants (`is_lora_variant`) whose forward or base differs from plain LoRA. VeLoRA is
 * absent on purpose: it only swaps the backward pass, so its inference outputs are plain LoRA's. */
const VARIANTS: Array<[string, string]> = [
  ["use_bdlora", "BD-LoRA (block-diagonal factors)"],
  ["arrow_config", "Arrow routing between adapters"],
  ["kasa_config", "KaSA (truncates the base weights' singular values)"],
  ["monteclora_config", "MonteCLoRA (Monte Carlo sampling on the factors)"],
  ["lora_ga_config", "LoRA-GA (initialisation that rewrites the base weights)"],
];

function initProblem(value: unknown): string | null {
  if (value === true || value === false || value === "gaussian" || value == null) return null;
  if (typeof value !== "string") return null;
  const scheme = INIT_SCHEMES.find(([pattern]) => pattern.test(value))?.[1];
  const what = scheme ? ` (${scheme} changes the base weights or depends on them)` : "";
  return `is ${shown(value)}${what}; only true, false or "gaussian" are supported`;
}

const RULES: FeatureRule[] = [
  {
    field: "use_dora",
    check: (v) =>
      v === true
        ? "is true: DoRA is not supported (its magnitude vector rescales the base weights, so it is not additive)"
        : null,
  },
  {
    field: "modules_to_save",
    check: (v) =>
      nonEmpty(v)
        ? `is ${shown(v)}: modules_to_save is not supported (it ships full copies of base modules)`
        : null,
  },
  {
    field: "bias",
    check: (v) =>
      v === "all" || v === "lora_only"
        ? `is ${shown(v)}; only "none" is supported (trained biases change the base model)`
        : null,
  },
  {
    field: "lora_bias",
    check: (v) => (v === true ? "is true: a bias on lora_B is not supported" : null),
  },
  { field: "init_lora_weights", check: initProblem },
  {
    field: "target_parameters",
    check: (v) => (nonEmpty(v) ? `is ${shown(v)}: LoRA on raw parameters is not supported` : null),
  },
  {
    field: "layer_replication",
    check: (v) => (nonEmpty(v) ? `is ${shown(v)}: layer replication changes the base model` : null),
  },
  {
    field: "trainable_token_indices",
    check: (v) => (nonEmpty(v) ? `is ${shown(v)}: trainable token embeddings are not supported` : null),
  },
  {
    field: "use_qalora",
    check: (v) => (v === true ? "is true: QA-LoRA is not supported" : null),
  },
  {
    field: "alora_invocation_tokens",
    check: (v) =>
      nonEmpty(v)
        ? `is ${shown(v)}: activated LoRA (applied after invocation tokens) is not supported`
        : null,
  },
  ...VARIANTS.map(([field, what]) => ({
    field,
    check: (v: unknown) => (nonEmpty(v) ? `is ${shown(v)}: ${what} is not supported` : null),
  })),
];

/** One line per unsupported feature: `<field> <why>`. */
export function unsupportedFeatures(raw: unknown): string[] {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return [];
  const record = raw as Raw;
  const problems: string[] = [];
  for (const rule of RULES) {
    const problem = rule.check(record[rule.field]);
    if (problem !== null) problems.push(`${rule.field} ${problem}`);
  }
  return problems;
}
