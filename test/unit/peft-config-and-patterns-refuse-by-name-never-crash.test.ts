// Property-based fuzzing (fast-check) of the PEFT config parser and of the pattern matcher PEFT's regex
// fields go through (src/adapters/peft-regex.ts). An adapter_config.json of any shape is accepted or refused
// with invalid_adapter, every problem a message; a pattern of any text compiles or is refused by name, and
// matching never throws. Where Python's re, JS RegExp and RE2 agree (a small alphabet without the features
// they read differently), the matcher's answers equal a backtracking engine's.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  checkPattern,
  fullMatch,
  layerIndexText,
  type PatternUse,
  patternKeyMatches,
} from "../../src/adapters/peft-regex.ts";
import { validateAdapter } from "../../src/adapters/validate.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { AppError } from "../../src/errors.ts";
import { readSafetensors, type SafetensorsHeader } from "../../src/safetensors.ts";
import { demoSpec, makePeftAdapter, peftConfigJson } from "../helpers/peft-files.ts";

let spec: BaseModelSpec;
let header: SafetensorsHeader;
beforeAll(async () => {
  spec = await demoSpec();
  header = readSafetensors(makePeftAdapter({ spec, r: 4 }).safetensors);
});

/** Either an accepted adapter or a refusal callers answer 400 with; anything else fails the property. */
function acceptOrRefuse(config: unknown): void {
  try {
    const adapter = validateAdapter({ name: "fuzz", config, header, spec });
    expect(adapter.modules.length).toBeGreaterThan(0);
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    expect(error.code).toBe("invalid_adapter");
    expect(error.status).toBe(400);
    expect(error.message.length).toBeGreaterThan(0);
  }
}

/** Characters that mean something to a regex engine, and some that mean something to PEFT's names. */
const REGEX_ATOMS = [
  ".",
  "*",
  "+",
  "?",
  "|",
  "(",
  ")",
  "[",
  "]",
  "{",
  "}",
  "^",
  "$",
  "\\",
  "\\d",
  "\\w",
  "\\Z",
  "\\1",
  "\\p",
  "(?",
  "(?i)",
  "(?P<n>",
  "(?=",
  "(?<!",
  "[:alpha:]",
  "-",
  ",",
  "q_proj",
  "v_proj",
  "layers",
  "model",
  "0",
  "3",
  "a",
  "é",
  "\u0000",
  "\n",
];

const patternArb = fc.oneof(
  fc.array(fc.constantFrom(...REGEX_ATOMS), { maxLength: 16 }).map((parts) => parts.join("")),
  fc.string({ maxLength: 24 }),
  fc.string({ minLength: 500, maxLength: 600 }),
);

const oddValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(-16, 0, -0, 1e308, 2 ** 53 + 1, 0.5, "", "all-linear", [], {}, null, [null], ["q_proj", 7]),
);

/** Values a publisher (or an attacker) might put in each field PEFT's LoraConfig has. */
const fieldValue: Record<string, fc.Arbitrary<unknown>> = {
  peft_type: fc.oneof(fc.constant("LORA"), oddValue),
  r: fc.oneof(fc.integer({ min: -4, max: 1_000_000 }), oddValue),
  lora_alpha: fc.oneof(fc.double(), oddValue),
  lora_dropout: fc.oneof(fc.double(), oddValue),
  target_modules: fc.oneof(patternArb, fc.array(patternArb, { maxLength: 4 }), oddValue),
  exclude_modules: fc.oneof(patternArb, fc.array(patternArb, { maxLength: 3 }), oddValue),
  use_rslora: fc.oneof(fc.boolean(), oddValue),
  rank_pattern: fc.oneof(
    fc.dictionary(patternArb, fc.integer({ min: -2, max: 4096 }), { maxKeys: 3 }),
    oddValue,
  ),
  alpha_pattern: fc.oneof(fc.dictionary(patternArb, fc.double(), { maxKeys: 3 }), oddValue),
  layers_to_transform: fc.oneof(
    fc.integer({ min: -2, max: 2 ** 40 }),
    fc.array(fc.nat(64), { maxLength: 4 }),
    oddValue,
  ),
  layers_pattern: fc.oneof(patternArb, fc.array(patternArb, { maxLength: 2 }), oddValue),
  fan_in_fan_out: fc.oneof(fc.boolean(), oddValue),
  bias: fc.oneof(fc.constantFrom("none", "all", "lora_only"), oddValue),
  use_dora: fc.oneof(fc.boolean(), oddValue),
  modules_to_save: fc.oneof(fc.array(patternArb, { maxLength: 2 }), oddValue),
  lora_bias: fc.oneof(fc.boolean(), oddValue),
  init_lora_weights: oddValue,
  layer_replication: oddValue,
  trainable_token_indices: oddValue,
  target_parameters: oddValue,
  use_qalora: oddValue,
  alora_invocation_tokens: oddValue,
};

/** PEFT's saved config with a few fields replaced, a few dropped and a few unknown ones added. */
const configArb = fc
  .tuple(
    fc.record(fieldValue, { requiredKeys: [] }),
    fc.subarray(Object.keys(fieldValue), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 8 }), oddValue, { maxKeys: 2 }),
  )
  .map(([replaced, dropped, extra]) => {
    const config: Record<string, unknown> = { ...peftConfigJson(), ...extra, ...replaced };
    for (const key of dropped) delete config[key];
    return config;
  });

describe("the PEFT config parser, fuzzed", () => {
  it("accepts or refuses with invalid_adapter any adapter_config.json built from PEFT's", () => {
    fc.assert(
      fc.property(configArb, (config) => acceptOrRefuse(config)),
      { numRuns: 1_500 },
    );
  });

  it("refuses any JSON value that is not a config object, by name", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (config) => acceptOrRefuse(config)),
      { numRuns: 300 },
    );
  });
});

const USES: PatternUse[] = ["fullmatch", "pattern_key", "layer_index"];
const moduleName = fc
  .array(fc.constantFrom("model", "layers", "0", "1", "12", "self_attn", "q_proj", "v_proj", "a", "b"), {
    minLength: 1,
    maxLength: 6,
  })
  .map((parts) => parts.join("."));

describe("the PEFT pattern matcher, fuzzed", () => {
  it("compiles or refuses by name any pattern text, and never throws while matching", () => {
    fc.assert(
      fc.property(patternArb, fc.constantFrom(...USES), moduleName, (pattern, use, name) => {
        const field =
          use === "fullmatch" ? "target_modules" : use === "pattern_key" ? "rank_pattern" : "layers_pattern";
        try {
          checkPattern(pattern, field, use);
        } catch (error) {
          if (!(error instanceof AppError)) throw error;
          expect(error.code).toBe("invalid_adapter");
          expect(error.message).toMatch(new RegExp(`^adapter_config\\.json ${field}: `));
          return;
        }
        if (use === "fullmatch") expect(typeof fullMatch(pattern, name, field)).toBe("boolean");
        if (use === "pattern_key") expect(typeof patternKeyMatches(pattern, name, field)).toBe("boolean");
        if (use === "layer_index") {
          const index = layerIndexText(pattern, name, field);
          expect(index === null || typeof index === "string").toBe(true);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it("refuses the group openings RE2 reads but Python's re refuses (found by the property above)", () => {
    for (const pattern of ["(?)", "a(?)b", "(?-)", "(?<n>a)"]) {
      expect(() => checkPattern(pattern, "target_modules", "fullmatch")).toThrow(
        /^adapter_config\.json target_modules: "\(\?.{0,2}" opens no group Python's re knows/,
      );
    }
    for (const pattern of ["(?:a)", "(?P<n>a)", "(?i)a", "(?i-s:a)"]) {
      expect(() => checkPattern(pattern, "target_modules", "fullmatch")).not.toThrow();
    }
  });

  // a, b, `.`, `*`, `+`, `?`, `|`, groups and a class: the same language to Python's re, JS RegExp and RE2.
  const commonPattern = fc
    .array(fc.constantFrom("a", "b", ".", "\\.", "*", "+", "?", "|", "(", ")", "[ab]", "(?:"), {
      maxLength: 10,
    })
    .map((parts) => parts.join(""));
  const shortName = fc.string({ unit: fc.constantFrom("a", "b", "."), maxLength: 8 });

  function backtracking(source: string): RegExp | null {
    try {
      return new RegExp(source, "u");
    } catch {
      return null;
    }
  }

  it("answers fullmatch and pattern keys as a backtracking engine does, where the languages agree", () => {
    fc.assert(
      fc.property(commonPattern, shortName, (pattern, name) => {
        // Python compiles a fullmatch pattern on its own, so `)(` is an error however it would be wrapped.
        const full = backtracking(pattern) === null ? null : backtracking(`^(?:${pattern})$`);
        if (full === null) {
          expect(() => checkPattern(pattern, "target_modules", "fullmatch")).toThrow(AppError);
          return;
        }
        expect(fullMatch(pattern, name, "target_modules")).toBe(full.test(name));
        // PEFT's get_pattern_key: re.match(rf"(.*\.)?({key})$", name), the key pasted in as text.
        const key = backtracking(`^(.*\\.)?(${pattern})$`);
        if (key !== null) expect(patternKeyMatches(pattern, name, "rank_pattern")).toBe(key.test(name));
      }),
      { numRuns: 2_000 },
    );
  });
});
