// What every command line here does alike: refuse a flag it does not know (naming the closest known one),
// answer --help and --version without doing anything else, and exit with a code that says who was at fault.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type CommandDef, renderUsage, runCommand, runMain } from "citty";
import { AppError } from "../src/errors.ts";
import { EXIT, reportFailure } from "./report.ts";

export { EXIT };

/** Edit distance between two flag names, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        (prev[j] ?? 0) + 1,
        (row[j - 1] ?? 0) + 1,
        (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** The known flag nearest to `flag`, when it is near enough to be a slip of the keyboard. */
export function closestFlag(flag: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const name of known) {
    const d = distance(flag, name);
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(flag.length / 3)) ? best : null;
}

/**
 * Every `--flag` (or `--flag=value`, or `--no-flag` of a boolean) in `argv` that `known` does not name,
 * refused as one AppError listing each with its suggestion. Values after `--` are positional and pass.
 */
export function refuseUnknownFlags(
  argv: readonly string[],
  known: readonly string[],
  aliases: readonly string[] = [],
): void {
  // citty reads `--batch-size` for an arg named `batchSize`, and the other way round.
  const kebab = (n: string) => n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const camel = (n: string) => n.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const spellings = [...known, ...aliases].flatMap((n) => [n, kebab(n), camel(n)]);
  const accepted = new Set([...spellings, "help", "version"]);
  const problems: string[] = [];
  for (const arg of argv) {
    if (arg === "--") break;
    if (!arg.startsWith("--")) continue;
    const name = arg.slice(2).split("=")[0] ?? "";
    if (accepted.has(name) || (name.startsWith("no-") && accepted.has(name.slice(3)))) continue;
    const near = closestFlag(name, known.map(kebab));
    problems.push(`--${name}: not a flag of this command${near === null ? "" : `; did you mean --${near}?`}`);
  }
  if (problems.length > 0) {
    throw new AppError("invalid_request", problems.join("; "), { param: "argv", details: problems });
  }
}

export function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

export function wantsVersion(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--version");
}

// biome-ignore lint/suspicious/noExplicitAny: citty's command type is generic over its args
type AnyCommand = CommandDef<any>;

async function resolved<T>(
  value: T | (() => T | Promise<T>) | Promise<T> | undefined,
): Promise<T | undefined> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}

/** The subcommand `argv` selects, and the arguments left for it. */
async function selectCommand(
  command: AnyCommand,
  argv: string[],
): Promise<{ command: AnyCommand; rest: string[] }> {
  const subs = await resolved(command.subCommands);
  const first = argv.findIndex((a) => !a.startsWith("-"));
  const name = first === -1 ? undefined : argv[first];
  if (subs === undefined || name === undefined || !(name in subs)) return { command, rest: argv };
  const sub = await resolved(subs[name]);
  return sub === undefined ? { command, rest: argv } : selectCommand(sub, argv.slice(first + 1));
}

/** This package's version, what every command's --version prints. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8"));
  return String((pkg as { version?: unknown }).version ?? "unknown");
}

/** `--json` (or `--json=true`) before any `--`. */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === "--json" || a === "--json=true");
}

// citty colours its messages for a terminal; a message in JSON or a log carries none
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching the ANSI escape is the point
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * citty's command runner, after refusing unknown flags of the selected (sub)command with exit code 2 (citty
 * itself accepts any flag, so `--alais prod` would publish with no alias). `--version` prints the package's
 * version; a missing argument exits 2; with `--json` on a command that has it, every failure is one error
 * envelope on stdout (cli/report.ts).
 */
export async function runChecked(command: AnyCommand, argv = process.argv.slice(2)): Promise<void> {
  if (wantsHelp(argv)) {
    await runMain(command, { rawArgs: argv });
    return;
  }
  const { command: selected, rest } = await selectCommand(command, argv);
  const args = (await resolved(selected.args)) ?? {};
  // no subcommand selected where one is needed: citty's refusal names it, before any flag of a subcommand
  const subcommandMissing = selected === command && (await resolved(command.subCommands)) !== undefined;
  const json = ("json" in args || subcommandMissing) && wantsJson(argv);
  if (wantsVersion(argv)) {
    const meta = await resolved(command.meta);
    console.log(`lora-edge ${meta?.name ?? "command"} ${packageVersion()}`);
    return;
  }
  const names = Object.entries(args)
    .filter(([, def]) => (def as { type?: string }).type !== "positional")
    .map(([key]) => key);
  const aliases = Object.values(args).flatMap((def) => {
    const alias = (def as { alias?: string | string[] }).alias;
    return alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
  });
  try {
    if (!subcommandMissing) refuseUnknownFlags(rest, names, aliases);
    await runCommand(command, { rawArgs: argv });
  } catch (error) {
    // citty's own refusals (a missing argument, an unknown subcommand) are usage mistakes
    if (error instanceof Error && error.name === "CLIError") {
      // the usage goes with the error, on stderr: stdout stays the command's output
      if (!json) console.error(await renderUsage(selected, selected === command ? undefined : command));
      reportFailure(
        new AppError("invalid_request", error.message.replace(ANSI, ""), { param: "argv" }),
        json,
      );
    }
    reportFailure(error, json);
  }
}
