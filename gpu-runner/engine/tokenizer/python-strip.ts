// Python's str.strip/lstrip/rstrip for chat templates. @huggingface/jinja implements the three methods with
// JavaScript's trim, which ignores the argument: Qwen3's template calls `content.lstrip('\n')` and
// `reasoning_content.strip('\n')`, and Python strips only newlines there, keeping a leading space that
// trim would drop. Rendering must equal transformers' (test/runner/
// tokenizer-renders-each-family-chat-template-as-transformers.test.ts), so the three builtins of the library's
// string values are replaced once, at import, by ones that honour the argument (none or null: whitespace).
// This module must never change any other builtin.
import { Environment } from "@huggingface/jinja";

type Side = "both" | "left" | "right";

/** Python's str.strip(chars) (lstrip, rstrip by `side`); chars null strips whitespace as Python does. */
export function pythonStrip(value: string, chars: string | null, side: Side): string {
  if (chars === null) {
    if (side === "left") return value.trimStart();
    if (side === "right") return value.trimEnd();
    return value.trim();
  }
  const strip = new Set(chars);
  let start = 0;
  let end = value.length;
  if (side !== "right") while (start < end && strip.has(value[start] as string)) start++;
  if (side !== "left") while (end > start && strip.has(value[end - 1] as string)) end--;
  return value.slice(start, end);
}

interface RuntimeValueLike {
  value: unknown;
}
type Builtins = Map<string, unknown>;

const SIDES: Record<string, Side> = { strip: "both", lstrip: "left", rstrip: "right" };
const INSTALLED = Symbol("python-strip");

function install(): void {
  // The library exports neither class: take their constructors from values it makes.
  const probe = new Environment();
  const stringValue = probe.set("s", "") as object;
  const functionValue = probe.set("f", () => null) as object;
  const StringValue = stringValue.constructor as new (value: string) => RuntimeValueLike;
  const FunctionValue = functionValue.constructor as new (
    call: (args: RuntimeValueLike[]) => RuntimeValueLike,
  ) => unknown;
  const proto = StringValue.prototype as object;
  const original = Object.getOwnPropertyDescriptor(proto, "builtins");
  if (!original?.get || (proto as Record<symbol, unknown>)[INSTALLED]) return;
  const read = original.get;
  const patched = new WeakSet<Builtins>();
  Object.defineProperty(proto, "builtins", {
    configurable: true,
    get(this: RuntimeValueLike) {
      const builtins = read.call(this) as Builtins;
      if (!patched.has(builtins)) {
        for (const [name, side] of Object.entries(SIDES)) {
          builtins.set(
            name,
            new FunctionValue((args) => {
              const chars = args[0]?.value;
              if (chars !== undefined && chars !== null && typeof chars !== "string") {
                throw new Error(`${name}() argument must be a string or None; got ${typeof chars}`);
              }
              return new StringValue(pythonStrip(this.value as string, chars ?? null, side));
            }),
          );
        }
        patched.add(builtins);
      }
      return builtins;
    },
  });
  Object.defineProperty(proto, INSTALLED, { value: true });
}

install();
