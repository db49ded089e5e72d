// PEFT's regex fields (target_modules and exclude_modules as strings, layers_pattern, rank_pattern and
// alpha_pattern keys), matched the way PEFT's Python `re` calls match them, by RE2 (re2js): time linear in
// the pattern and the name, so a publisher's pattern can never stall the edge or a runner's cold load the
// way a backtracking engine does on `model\.(.*)*x`. It must never hand a pattern to JS RegExp.
// Constructs RE2 cannot run (backreferences, lookaround) and constructs RE2 would read differently from
// Python are refused by name; everything else means what it means to Python.
import { RE2JS, RE2JSException, RE2JSSyntaxException } from "re2js";
import { AppError } from "../errors.ts";

/** Per pattern. PEFT's own patterns and generated ones (unsloth's is ~300 characters) fit well inside. */
export const PEFT_PATTERN_MAX_CHARS = 512;

/** How PEFT uses a pattern: compiled on its own, or pasted into a larger pattern of PEFT's. */
type Placement = "alone" | "embedded";

/** The flag letters Python's re and RE2 both accept with the same meaning. */
const SHARED_FLAGS = new Set(["i", "m", "s"]);

/** Escapes RE2 accepts that Python's re refuses ("bad escape"), so PEFT could never load the pattern. */
const RE2_ONLY_ESCAPES = new Set(["p", "P", "Q", "E", "C"]);

/** The `(?` openings Python's re accepts besides flag groups and GROUP_REFUSALS (RE2 refuses the last two itself). */
const PYTHON_GROUP_OPENINGS = ["(?:", "(?P<", "(?#", "(?>"];

const GROUP_REFUSALS: Array<[string, string]> = [
  ["(?=", "a lookahead"],
  ["(?!", "a negative lookahead"],
  ["(?<=", "a lookbehind"],
  ["(?<!", "a negative lookbehind"],
  ["(?P=", "a named backreference"],
  ["(?(", "a conditional group"],
];

function shown(pattern: string): string {
  const text = JSON.stringify(pattern);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function refuse(field: string, rule: string, pattern: string): AppError {
  return new AppError("invalid_adapter", `adapter_config.json ${field}: ${rule}; got ${shown(pattern)}`, {
    param: field,
  });
}

function linearOnly(field: string, what: string, pattern: string): AppError {
  return refuse(
    field,
    `${what} is not supported (patterns are matched in linear time by RE2, which has no backreferences or lookaround)`,
    pattern,
  );
}

/** Python reads `\12` as a backreference; RE2 would read it as an octal escape. Three octal digits are octal in both. */
function isBackreference(pattern: string, at: number): boolean {
  return /^[1-9]/.test(pattern.slice(at + 1)) && !/^[0-3][0-7]{2}/.test(pattern.slice(at + 1));
}

/** A `(?flags)` or `(?flags:` group starting at `at`, or null. */
function flagGroup(pattern: string, at: number): { letters: string; global: boolean; off: boolean } | null {
  const m = /^\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])/.exec(pattern.slice(at));
  if (m === null || `${m[1]}${m[2] ?? ""}` === "") return null;
  return { letters: `${m[1]}${m[2] ?? ""}`, global: m[3] === ")", off: m[2] !== undefined };
}

/**
 * Refuses what RE2 cannot run or would read differently from Python, and returns the pattern in RE2's
 * spelling (Python's `\Z`, end of string, is RE2's `\z`). Walks the pattern once, tracking classes, where
 * `(` and `\1` mean something else.
 */
function toRe2(pattern: string, field: string, placement: Placement): string {
  if (pattern.length > PEFT_PATTERN_MAX_CHARS) {
    throw refuse(
      field,
      `a pattern must be at most ${PEFT_PATTERN_MAX_CHARS} characters; this one has ${pattern.length}`,
      pattern,
    );
  }
  let out = "";
  let classBody = -1;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    const inClass = classBody !== -1;
    if (c === "\\") {
      const next = pattern[i + 1] ?? "";
      if (!inClass && isBackreference(pattern, i)) {
        throw linearOnly(field, `a backreference "\\${/^\d+/.exec(pattern.slice(i + 1))?.[0]}"`, pattern);
      }
      if (RE2_ONLY_ESCAPES.has(next)) {
        throw refuse(
          field,
          `the escape "\\${next}" is not Python regex syntax (PEFT's re refuses it)`,
          pattern,
        );
      }
      out += !inClass && next === "Z" ? "\\z" : `${c}${next}`;
      i++;
      continue;
    }
    if (inClass) {
      const posix = /^\[:\^?[a-z]+:\]/.exec(pattern.slice(i));
      if (posix !== null) {
        throw refuse(
          field,
          `"${posix[0]}" inside a class is a POSIX class to RE2 but plain characters to Python's re; list the characters instead (e.g. [a-z])`,
          pattern,
        );
      }
      if (c === "]" && i > classBody) classBody = -1;
      out += c;
      continue;
    }
    if (c === "[") {
      // A `]` first in the class (after an optional `^`) is a literal to both Python and RE2.
      classBody = pattern[i + 1] === "^" ? i + 2 : i + 1;
      out += c;
      continue;
    }
    if (c === "(" && pattern[i + 1] === "?") {
      const refusal = GROUP_REFUSALS.find(([opening]) => pattern.startsWith(opening, i));
      if (refusal !== undefined) throw linearOnly(field, `${refusal[1]} "${refusal[0]}"`, pattern);
      const flags = flagGroup(pattern, i);
      const other = flags ? [...flags.letters].find((f) => !SHARED_FLAGS.has(f)) : undefined;
      if (other !== undefined) {
        throw refuse(
          field,
          `the inline flag "${other}" is not supported (only i, m and s mean the same to Python's re and RE2)`,
          pattern,
        );
      }
      if (flags?.global && flags.off) {
        throw refuse(
          field,
          `a flag group that turns flags off must be scoped, as in "(?-i:...)" (Python's re refuses "(?-i)")`,
          pattern,
        );
      }
      if (flags?.global && (placement === "embedded" || i > 0)) {
        throw refuse(
          field,
          `a global flag group such as "(?i)" must start the whole pattern (Python 3.11+ refuses it elsewhere${placement === "embedded" ? ", and PEFT pastes this field into a larger pattern" : ""}); use a scoped group such as "(?i:...)"`,
          pattern,
        );
      }
      // RE2 also reads `(?)`, `(?-)` and `(?<name>` as groups; Python's re refuses them, so PEFT never loads them.
      if (flags === null && !PYTHON_GROUP_OPENINGS.some((opening) => pattern.startsWith(opening, i))) {
        throw refuse(
          field,
          `"${pattern.slice(i, i + 4)}" opens no group Python's re knows (PEFT's re refuses it); use "(?:" for a group, "(?P<name>" for a named one`,
          pattern,
        );
      }
    }
    out += c;
  }
  return out;
}

function compile(source: string, field: string, original: string, python: string): RE2JS {
  try {
    return RE2JS.compile(source, RE2JS.DISABLE_UNICODE_GROUPS);
  } catch (error) {
    if (!(error instanceof RE2JSException)) throw error;
    const why = error instanceof RE2JSSyntaxException ? error.getDescription() : error.message;
    const as = python === original ? "" : `, matched by PEFT as ${python}`;
    throw new AppError(
      "invalid_adapter",
      `adapter_config.json ${field}: ${JSON.stringify(original)} is not a valid regular expression (RE2: ${why}${as})`,
      { param: field, cause: error },
    );
  }
}

interface Compiled {
  regex: RE2JS;
  /** The whole expression is anchored at both ends, so a DFA-only full match answers `re.match`. */
  fullyAnchored: boolean;
}

const cache = new Map<string, Compiled>();

/** Cached: targeting asks about every module of the base, with the same few patterns. */
function cached(key: string, build: () => Compiled): Compiled {
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const built = build();
  if (cache.size > 1000) cache.clear();
  cache.set(key, built);
  return built;
}

function compilesAlone(source: string): boolean {
  try {
    RE2JS.compile(source, RE2JS.DISABLE_UNICODE_GROUPS);
    return true;
  } catch {
    return false;
  }
}

function fullMatcher(pattern: string, field: string): Compiled {
  return cached(`full\0${field}\0${pattern}`, () => ({
    regex: compile(toRe2(pattern, field, "alone"), field, pattern, pattern),
    fullyAnchored: true,
  }));
}

function patternKeyMatcher(key: string, field: string): Compiled {
  return cached(`key\0${field}\0${key}`, () => {
    const inner = toRe2(key, field, "embedded");
    return {
      regex: compile(`(?:.*\\.)?(?:${inner})$`, field, key, `(.*\\.)?(${key})$`),
      // A key that is a whole regex on its own stays inside the group, so `$` ends every alternative.
      fullyAnchored: compilesAlone(inner),
    };
  });
}

function layerIndexMatcher(pattern: string, field: string): Compiled {
  return cached(`layer\0${field}\0${pattern}`, () => ({
    regex: compile(
      `.*\\.${toRe2(pattern, field, "embedded")}\\.(\\d+)\\.`,
      field,
      pattern,
      `.*\\.${pattern}\\.(\\d+)\\.`,
    ),
    fullyAnchored: false,
  }));
}

/** How each PEFT field uses its patterns. */
export type PatternUse = "fullmatch" | "pattern_key" | "layer_index";

/** Compiles a pattern as `use` would; throws the AppError that names the field, the rule and the pattern. */
export function checkPattern(pattern: string, field: string, use: PatternUse): void {
  if (use === "fullmatch") fullMatcher(pattern, field);
  else if (use === "pattern_key") patternKeyMatcher(pattern, field);
  else layerIndexMatcher(pattern, field);
}

/** Python's `re.fullmatch(pattern, name)`: PEFT's test for a string target_modules or exclude_modules. */
export function fullMatch(pattern: string, name: string, field: string): boolean {
  return fullMatcher(pattern, field).regex.testExact(name);
}

/**
 * PEFT's get_pattern_key test for one rank_pattern / alpha_pattern key: `re.match(rf"(.*\.)?({key})$", name)`.
 * The key is pasted in as text, as PEFT does, so a key that closes PEFT's group means what it means to Python.
 */
export function patternKeyMatches(key: string, name: string, field: string): boolean {
  const { regex, fullyAnchored } = patternKeyMatcher(key, field);
  return fullyAnchored ? regex.testExact(name) : regex.matcher(name).lookingAt();
}

/**
 * The layer index PEFT reads with `re.match(rf".*\.{pattern}\.(\d+)\.", name).group(1)`, or null when the
 * pattern does not match. Group 1 is the pattern's own first group if it has one, as in PEFT.
 */
export function layerIndexText(pattern: string, name: string, field: string): string | null {
  const matcher = layerIndexMatcher(pattern, field).regex.matcher(name);
  return matcher.lookingAt() ? matcher.group(1) : null;
}
