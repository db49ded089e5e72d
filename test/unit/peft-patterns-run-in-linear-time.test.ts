// PEFT's regex fields are matched by RE2 (src/adapters/peft-regex.ts). A backtracking engine took 15.8 s on
// the 30-byte target_modules below and grows exponentially with the name; the bound of 1 s is not a
// performance figure (those live in BENCHMARKS.md, docs/conventions.md#tests) but the line between
// "answers" and "hangs". The tables check that RE2 answers exactly what the previous JS RegExp matching
// answered, for the patterns both can run.
import { beforeAll, describe, expect, it } from "vitest";
import { effectiveModules } from "../../src/adapters/peft.ts";
import { fullMatch, layerIndexText, patternKeyMatches } from "../../src/adapters/peft-regex.ts";
import { validateAdapter } from "../../src/adapters/validate.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { PeftLoraConfigSchema } from "../../src/contracts/peft-config.ts";
import { readSafetensors } from "../../src/safetensors.ts";
import { demoSpec, makePeftAdapter, peftConfigJson } from "../helpers/peft-files.ts";

let spec: BaseModelSpec;
beforeAll(async () => {
  spec = await demoSpec();
});

const CATASTROPHIC = String.raw`.*\.(q|v)_proj|model\.(.*)*x`;

function within<T>(ms: number, run: () => T): T {
  const start = performance.now();
  const result = run();
  expect(performance.now() - start).toBeLessThan(ms);
  return result;
}

/** A dotted module name of about `chars` characters that none of the catastrophic patterns match. */
function longName(chars: number): string {
  let name = "model";
  for (let i = 0; name.length < chars; i++) name += `.layers.${i}`;
  return `${name}.self_attn.k_proj`;
}

describe("catastrophic patterns finish", () => {
  it(`target_modules ${CATASTROPHIC} adapts q_proj and v_proj of every layer, in well under a second`, () => {
    const config = PeftLoraConfigSchema.parse(peftConfigJson({ target_modules: CATASTROPHIC }));
    const modules = within(1000, () => effectiveModules(config, spec).map((m) => m.module));
    expect(modules).toEqual([
      "model.layers.0.self_attn.q_proj",
      "model.layers.0.self_attn.v_proj",
      "model.layers.1.self_attn.q_proj",
      "model.layers.1.self_attn.v_proj",
    ]);
  });

  it("validates a whole adapter with that pattern in well under a second", () => {
    const built = makePeftAdapter({ spec, r: 2, targets: ["q_proj", "v_proj"] });
    const config = { ...built.config, target_modules: CATASTROPHIC };
    const header = readSafetensors(built.safetensors);
    const adapter = within(1000, () => validateAdapter({ name: "redos", config, header, spec }));
    expect(adapter.modules).toHaveLength(4);
  });

  it.each([
    ["the same pattern", CATASTROPHIC],
    ["deeper nesting", String.raw`model\.((.*)*)*(.*)*x`],
    ["ambiguous alternation", String.raw`model\.(.|.|\w|[a-z.0-9_])*x`],
    ["nested counted groups", String.raw`model(\.(.{0,9})*){1,9}x`],
    ["the nesting repeated 40 times", `model${String.raw`(\.(.*)*)*`.repeat(40)}x`],
  ])("%s on a 4,000-character name: fullmatch, rank_pattern key and layers_pattern", (_, pattern) => {
    const name = longName(4000);
    within(1000, () => {
      expect(fullMatch(pattern, name, "target_modules")).toBe(false);
      expect(patternKeyMatches(pattern, name, "rank_pattern")).toBe(false);
      expect(layerIndexText(pattern, name, "layers_pattern")).toBeNull();
    });
  });

  it("rank_pattern and layers_pattern keys of the same shape cost no more on every module of the base", () => {
    const config = PeftLoraConfigSchema.parse(
      peftConfigJson({
        target_modules: ["q_proj", "v_proj", "down_proj"],
        layers_to_transform: [0, 1],
        layers_pattern: ["(.*)*x", "layers"],
        rank_pattern: { "(.*)*x": 2, "mlp\\.(.*)*_proj": 4 },
        alpha_pattern: { "(.|\\w)*q_proj": 32 },
      }),
    );
    const got = within(1000, () =>
      Object.fromEntries(effectiveModules(config, spec).map((m) => [m.module, [m.rank, m.alpha]])),
    );
    expect(got).toEqual({
      "model.layers.0.self_attn.q_proj": [8, 32],
      "model.layers.0.self_attn.v_proj": [8, 16],
      "model.layers.0.mlp.down_proj": [4, 16],
      "model.layers.1.self_attn.q_proj": [8, 32],
      "model.layers.1.self_attn.v_proj": [8, 16],
      "model.layers.1.mlp.down_proj": [4, 16],
    });
  });
});

// The previous matching, JS RegExp over PEFT's patterns with these wrappers, as the oracle for patterns it
// could run without blowing up.
const previous = {
  fullMatch: (p: string, name: string) => new RegExp(`^(?:${p.replace(/\(\?P</g, "(?<")})$`).test(name),
  patternKey: (k: string, name: string) =>
    new RegExp(`^(?:.*\\.)?(?:${k.replace(/\(\?P</g, "(?<")})$`).test(name),
  layerIndex: (p: string, name: string) => new RegExp(`^.*\\.${p}\\.(\\d+)\\.`).exec(name)?.[1] ?? null,
};

const UNSLOTH = String.raw`(?:.*?(?:language|text).*?(?:self_attn|attention|attn|mlp|feed_forward|ffn|dense).*?(?:q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj).*?)|(?:\bmodel\.layers\.[\d]{1,}\.(?:self_attn|attention|attn|mlp|feed_forward|ffn|dense)\.(?:(?:q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)))`;

const TARGETS = [
  String.raw`.*\.(q|k)_proj`,
  String.raw`.*\.(q|v)_proj`,
  "q_proj",
  String.raw`model\.layers\.1\..*mlp.*`,
  String.raw`.*layers\.0\..*`,
  String.raw`.*\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj`,
  String.raw`model\.layers\.\d+\.self_attn\.[qkv]_proj`,
  String.raw`.*[02468]\.self_attn\..*`,
  String.raw`^model\..*_proj$`,
  String.raw`.*\.(?P<kind>q|v)_proj`,
  String.raw`.*?\.(?:q_proj|v_proj)`,
  String.raw`model\.layers\.(0|1)\.mlp\.(gate|up)_proj|.*o_proj`,
  String.raw`.*\b(q|k)_proj`,
  "[a-z_.0-9]+down_proj",
  String.raw`.*\w+\.\w+_proj`,
  String.raw`.*(layers)\.1\d*\..*`,
  String.raw`.*\.[^.]+_proj`,
  String.raw`(?:.*\.)?q_proj`,
  String.raw`.*\.\x71_proj`,
  "lm_head",
  ".*",
  "",
  UNSLOTH,
];

const RANK_KEYS = [
  "q_proj",
  "proj",
  "_proj",
  ".*_proj",
  String.raw`layers\.1\.mlp\.down_proj`,
  "layers.1.mlp.down_proj",
  String.raw`self_attn\.[qk]_proj`,
  "(q|v)_proj",
  String.raw`\d\.mlp\..*`,
  "model.layers.0.self_attn.q_proj",
  "mlp.(up|down)_proj",
  "q_proj|v_proj",
  "(?P<which>[qk])_proj",
];

const LAYER_PATTERNS = ["layers", "h", "(layers|h)", "lay.rs", "[a-z]+", String.raw`\w+`];

function namesOf(base: BaseModelSpec): string[] {
  const names = new Set<string>();
  for (const m of base.modules) {
    const parts = m.name.split(".");
    for (let i = 1; i <= parts.length; i++) names.add(parts.slice(0, i).join("."));
  }
  for (const extra of [
    "lm_head",
    "model.embed_tokens",
    "model.layers.10.self_attn.q_proj",
    "xmodel.layers.1.self_attn.q_proj",
    "model.layers.0.self_attn.q_proj.lora_A",
    "model.language_model.layers.3.mlp.up_proj",
    "transformer.h.2.attn.c_attn",
    "q_proj",
  ]) {
    names.add(extra);
  }
  return [...names];
}

describe("RE2 answers what the previous matching answered", () => {
  it.each(TARGETS)("target_modules / exclude_modules %j: re.fullmatch on every name", (pattern) => {
    for (const name of namesOf(spec)) {
      expect([name, fullMatch(pattern, name, "target_modules")]).toEqual([
        name,
        previous.fullMatch(pattern, name),
      ]);
    }
  });

  it.each(RANK_KEYS)("rank_pattern / alpha_pattern key %j: PEFT's get_pattern_key on every name", (key) => {
    for (const name of namesOf(spec)) {
      expect([name, patternKeyMatches(key, name, "rank_pattern")]).toEqual([
        name,
        previous.patternKey(key, name),
      ]);
    }
  });

  it.each(LAYER_PATTERNS)("layers_pattern %j: the layer index read from every name", (pattern) => {
    for (const name of namesOf(spec)) {
      expect([name, layerIndexText(pattern, name, "layers_pattern")]).toEqual([
        name,
        previous.layerIndex(pattern, name),
      ]);
    }
  });
});

describe("where the previous matching strayed from Python's re, RE2 answers as PEFT does", () => {
  it("reads \\Z as the end of the name, not a literal Z", () => {
    expect(fullMatch(String.raw`.*q_proj\Z`, "model.layers.0.self_attn.q_proj", "target_modules")).toBe(true);
  });

  it("reads a leading ] in a class as a literal, not as an empty class", () => {
    expect(fullMatch(String.raw`.*\.[]a-z_]+`, "model.layers.0.self_attn.q_proj", "target_modules")).toBe(
      true,
    );
  });

  it("takes a leading global flag group, as re.fullmatch does", () => {
    expect(fullMatch("(?i).*Q_PROJ", "model.layers.0.self_attn.q_proj", "target_modules")).toBe(true);
  });

  it("anchors every alternative of a rank_pattern key that closes PEFT's group at the start (re.match)", () => {
    // PEFT builds (.*\.)?(q_proj)|(v_proj)$: the second alternative must match from the start of the name.
    expect(patternKeyMatches("q_proj)|(v_proj", "v_proj", "rank_pattern")).toBe(true);
    expect(patternKeyMatches("q_proj)|(v_proj", "model.layers.0.self_attn.v_proj", "rank_pattern")).toBe(
      false,
    );
    expect(patternKeyMatches("q_proj)|(v_proj", "model.layers.0.self_attn.q_proj.x", "rank_pattern")).toBe(
      true,
    );
  });

  it("anchors a layers_pattern alternation at the start too", () => {
    // re.match(r".*\.h|layers\.(\d+)\.", name): the second alternative only matches a name starting "layers.".
    expect(layerIndexText("h|layers", "model.layers.3.mlp.up_proj", "layers_pattern")).toBeNull();
    expect(layerIndexText("h|layers", "layers.3.mlp.up_proj", "layers_pattern")).toBe("3");
  });
});
