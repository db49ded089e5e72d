// Adapter configs and weights that cannot be served as trained are refused at validation, by the same code
// at the edge, in the publish CLI and in the runner, each message naming the field or tensor, the rule and
// the value (docs/conventions.md#errors).
import { beforeAll, describe, expect, it } from "vitest";
import { NonFiniteScan, nonFiniteProblems, nonFiniteProblemsOf } from "../../src/adapters/finite-weights.ts";
import { PEFT_PATTERN_MAX_CHARS } from "../../src/adapters/peft-regex.ts";
import { validateAdapter } from "../../src/adapters/validate.ts";
import type { BaseModelSpec } from "../../src/contracts/base-model.ts";
import { AppError } from "../../src/errors.ts";
import { readSafetensors, type SafetensorsFile } from "../../src/safetensors.ts";
import { demoSpec, makePeftAdapter } from "../helpers/peft-files.ts";

let spec: BaseModelSpec;
beforeAll(async () => {
  spec = await demoSpec();
});

function catchError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error("expected a refusal; the adapter was accepted");
}

/** The refusal of a valid q_proj/v_proj adapter whose adapter_config.json gets `config` on top. */
function refusal(config: Record<string, unknown>): AppError {
  const built = makePeftAdapter({ spec, r: 4 });
  const header = readSafetensors(built.safetensors);
  const error = catchError(() =>
    validateAdapter({ name: "support", config: { ...built.config, ...config }, header, spec }),
  );
  expect(error.code).toBe("invalid_adapter");
  expect(error.status).toBe(400);
  return error;
}

function accepted(config: Record<string, unknown>): number {
  const built = makePeftAdapter({ spec, r: 4 });
  const header = readSafetensors(built.safetensors);
  return validateAdapter({ config: { ...built.config, ...config }, header, spec }).modules.length;
}

const P = 'adapter "support": adapter_config.json';

/** A literal for a (trusted, test-only) RegExp. */
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("lora_alpha and r", () => {
  it.each([
    [{ lora_alpha: 0 }, `${P} lora_alpha: must be > 0; got 0`],
    [{ lora_alpha: -16 }, `${P} lora_alpha: must be > 0; got -16`],
    [{ alpha_pattern: { v_proj: 0 } }, `${P} alpha_pattern["v_proj"]: must be > 0; got 0`],
    [{ alpha_pattern: { q_proj: 8, v_proj: -1 } }, `${P} alpha_pattern["v_proj"]: must be > 0; got -1`],
    [{ r: 0 }, `${P} r: Too small: expected number to be >0; got 0`],
    [{ r: -4 }, `${P} r: Too small: expected number to be >0; got -4`],
    [{ r: 2.5 }, `${P} r: must be an integer; got 2.5`],
    [{ r: "8" }, `${P} r: must be a number; got "8"`],
    [{ rank_pattern: { v_proj: 0 } }, `${P} rank_pattern.v_proj: Too small: expected number to be >0; got 0`],
  ])("config %j is refused, naming the field", (config, message) => {
    expect(refusal(config).details).toContain(message);
  });

  it.each([Number.POSITIVE_INFINITY, Number.NaN])("lora_alpha %s is refused, naming the field", (alpha) => {
    expect(refusal({ lora_alpha: alpha }).message).toMatch(
      /^adapter "support": adapter_config\.json lora_alpha: /,
    );
  });

  it("accepts a fractional alpha and a null alpha (PEFT's default, 8)", () => {
    expect(accepted({ lora_alpha: 0.5 })).toBe(4);
    expect(accepted({ lora_alpha: null })).toBe(4);
  });
});

describe("regexes RE2 cannot run, or would read differently from Python, are refused by field", () => {
  it.each([
    ["target_modules", String.raw`.*(q)\1_proj`, 'a backreference "\\1" is not supported'],
    ["target_modules", String.raw`.*\.(?P<p>q)_(?P=p)roj`, 'a named backreference "(?P=" is not supported'],
    ["target_modules", ".*(?=q_proj)q_proj", 'a lookahead "(?=" is not supported'],
    ["target_modules", ".*(?!k)._proj", 'a negative lookahead "(?!" is not supported'],
    ["exclude_modules", ".*(?<=mlp)\\..*", 'a lookbehind "(?<=" is not supported'],
    ["exclude_modules", ".*(?<!self_attn)\\..*", 'a negative lookbehind "(?<!" is not supported'],
    ["target_modules", ".*(a)?(?(1)q|v)_proj", 'a conditional group "(?(" is not supported'],
    ["target_modules", String.raw`.*\pL_proj`, 'the escape "\\p" is not Python regex syntax'],
    ["target_modules", ".*[[:alpha:]]_proj", '"[:alpha:]" inside a class is a POSIX class to RE2'],
    ["target_modules", "(?x).*q_proj", 'the inline flag "x" is not supported'],
    ["target_modules", "(?-i).*q_proj", "a flag group that turns flags off must be scoped"],
    ["target_modules", ".*(?i)Q_PROJ", 'a global flag group such as "(?i)" must start the whole pattern'],
  ])("%s %j", (field, pattern, rule) => {
    const { details } = refusal({ target_modules: ["q_proj", "v_proj"], [field]: pattern });
    expect(details).toHaveLength(1);
    expect(details[0]).toMatch(
      new RegExp(`^${literal(`${P} ${field}: ${rule}`)}.*; got ${literal(JSON.stringify(pattern))}$`),
    );
  });

  it("names a rank_pattern, alpha_pattern or layers_pattern key the same way", () => {
    const error = refusal({
      layers_to_transform: [0],
      layers_pattern: ["layers", "(?<=model\\.)layers"],
      rank_pattern: { "(q)\\1": 2 },
      alpha_pattern: { "(?i)v_proj": 8 },
    });
    expect(error.details).toEqual([
      `${P} layers_pattern: a lookbehind "(?<=" is not supported (patterns are matched in linear time by RE2, which has no backreferences or lookaround); got "(?<=model\\\\.)layers"`,
      `${P} rank_pattern: a backreference "\\1" is not supported (patterns are matched in linear time by RE2, which has no backreferences or lookaround); got "(q)\\\\1"`,
      `${P} alpha_pattern: a global flag group such as "(?i)" must start the whole pattern (Python 3.11+ refuses it elsewhere, and PEFT pastes this field into a larger pattern); use a scoped group such as "(?i:...)"; got "(?i)v_proj"`,
    ]);
  });

  it("reports an invalid pattern with RE2's reason and, for a key, the pattern PEFT builds from it", () => {
    expect(refusal({ target_modules: "q_proj(" }).details).toEqual([
      `${P} target_modules: "q_proj(" is not a valid regular expression (RE2: missing closing ))`,
    ]);
    expect(refusal({ rank_pattern: { "q_proj))|((v": 2 } }).details).toEqual([
      `${P} rank_pattern: "q_proj))|((v" is not a valid regular expression (RE2: unexpected ), matched by PEFT as (.*\\.)?(q_proj))|((v)$)`,
    ]);
  });

  it(`refuses a pattern over ${PEFT_PATTERN_MAX_CHARS} characters and accepts one at the cap`, () => {
    const at = `.*\\.(q|v)_proj${"|x".repeat((PEFT_PATTERN_MAX_CHARS - 14) / 2)}`;
    expect(at).toHaveLength(PEFT_PATTERN_MAX_CHARS);
    expect(accepted({ target_modules: at })).toBe(4);
    const over = `${at}y`;
    expect(refusal({ target_modules: over }).details).toEqual([
      `${P} target_modules: a pattern must be at most 512 characters; this one has 513; got ${JSON.stringify(over).slice(0, 77)}...`,
    ]);
    expect(refusal({ rank_pattern: { [over]: 2 } }).details[0]).toContain(
      "rank_pattern: a pattern must be at most 512 characters; this one has 513",
    );
  });

  it("accepts what RE2 and Python read alike: named groups, scoped flags, \\Z, octal escapes", () => {
    expect(accepted({ target_modules: String.raw`.*\.(?P<kind>q|v)_proj` })).toBe(4);
    expect(accepted({ target_modules: String.raw`(?i).*\.(Q|V)_PROJ` })).toBe(4);
    expect(accepted({ target_modules: String.raw`.*\.(?i:Q|V)_proj\Z` })).toBe(4);
    expect(accepted({ target_modules: String.raw`.*\.[\161\166]_proj` })).toBe(4);
    expect(accepted({ rank_pattern: { "(?i:V)_proj": 4 } })).toBe(4);
  });
});

describe("NaN and Inf weights", () => {
  /** An adapter file of `dtype` whose listed elements are overwritten with raw bit patterns. */
  function poisoned(dtype: "F32" | "F16" | "BF16", writes: Array<[string, number, number]>): SafetensorsFile {
    const built = makePeftAdapter({ spec, targets: ["q_proj"], r: 2, dtype });
    const file = readSafetensors(built.safetensors);
    const view = new DataView(file.bytes.buffer, file.bytes.byteOffset);
    for (const [module, index, bits] of writes) {
      const info = file.tensors.find((t) => t.name === `base_model.model.${module}`);
      if (!info) throw new Error(`fixture has no tensor ${module}`);
      const at = file.dataOffset + info.begin + index * (dtype === "F32" ? 4 : 2);
      if (dtype === "F32") view.setUint32(at, bits, true);
      else view.setUint16(at, bits, true);
    }
    return file;
  }

  const B1 = "model.layers.1.self_attn.q_proj.lora_B.weight";
  const A0 = "model.layers.0.self_attn.q_proj.lora_A.weight";

  it.each([
    ["F32", 0x7fc00000, "NaN"],
    ["F32", 0x7f800000, "Infinity"],
    ["F16", 0xfc00, "-Infinity"],
    ["F16", 0x7e00, "NaN"],
    ["BF16", 0x7f80, "Infinity"],
    ["BF16", 0xffc1, "NaN"],
  ] as const)(
    "%s bits %s are refused as %s, naming the tensor and the first bad index",
    (dtype, bits, shown) => {
      const file = poisoned(dtype, [
        [B1, 5, bits],
        [B1, 9, bits],
        [A0, 0, bits],
      ]);
      const error = catchError(() =>
        validateAdapter({
          name: "support",
          config: makePeftAdapter({ spec, targets: ["q_proj"], r: 2 }).config,
          header: file,
          spec,
        }),
      );
      expect(error.details).toEqual([
        `adapter "support": tensor "base_model.model.${A0}" must hold only finite values; got ${shown} at index 0`,
        `adapter "support": tensor "base_model.model.${B1}" must hold only finite values; got ${shown} at index 5`,
      ]);
    },
  );

  it("accepts the largest finite values", () => {
    const file = poisoned("F16", [[B1, 0, 0x7bff]]);
    const config = makePeftAdapter({ spec, targets: ["q_proj"], r: 2 }).config;
    expect(validateAdapter({ config, header: file, spec }).modules).toHaveLength(2);
  });

  it("finds the same values in a stream cut at any byte, as the publish CLI reads the file", async () => {
    const file = poisoned("F32", [
      [B1, 63, 0xff800000],
      [A0, 127, 0x7fc00001],
    ]);
    const whole = nonFiniteProblems(file);
    expect(whole).toHaveLength(2);
    for (const size of [1, 3, 7, 64, 4096]) {
      async function* chunks(): AsyncGenerator<Uint8Array> {
        for (let at = 0; at < file.bytes.byteLength; at += size) yield file.bytes.subarray(at, at + size);
      }
      expect(await nonFiniteProblemsOf(file, chunks())).toEqual(whole);
    }
    const scan = new NonFiniteScan(file);
    scan.push(file.bytes);
    expect(scan.problems()).toEqual(whole);
  });

  it("checks values only when it has them: a header alone (the edge) is judged on its shapes", () => {
    const file = poisoned("F32", [[B1, 0, 0x7fc00000]]);
    const config = makePeftAdapter({ spec, targets: ["q_proj"], r: 2 }).config;
    const { bytes: _, ...header } = file;
    expect(validateAdapter({ config, header, spec }).modules).toHaveLength(2);
  });
});
