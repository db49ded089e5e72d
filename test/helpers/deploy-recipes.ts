// Reads the deploy recipes in deploy/ as their managers do, for the tests that check them: the Dockerfile's
// instructions (continuations joined, comments dropped), its exec-form arrays and ENV, the env file as
// systemd's EnvironmentFile and `docker run --env-file` read it, the unit's [Service] settings and systemd's
// `${NAME}` expansion of ExecStart; and what the container's ENTRYPOINT shell would exec, through a real
// /bin/sh that prints the words instead of running them.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");
export const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

export interface Step {
  op: string;
  rest: string;
}

/** Dockerfile instructions, with `\` continuations joined and comments dropped. */
export function instructions(text: string): Step[] {
  return text
    .split("\n")
    .filter((l) => !/^\s*#/.test(l))
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .map((l) => {
      const at = l.search(/\s/);
      return { op: l.slice(0, at).toUpperCase(), rest: l.slice(at + 1).trim() };
    });
}

/** The one instruction `op`; throws when there is none or more than one. */
export function only(steps: Step[], op: string): string {
  const found = steps.filter((s) => s.op === op);
  if (found.length !== 1) throw new Error(`the Dockerfile has ${found.length} ${op} instructions; want 1`);
  return (found[0] as Step).rest;
}

/** The exec (JSON) form; a shell form would put /bin/sh in front without `exec`, and SIGTERM would stop there. */
export function execForm(rest: string): string[] {
  const parsed: unknown = JSON.parse(rest);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string"))
    throw new Error(`not an exec-form array of strings: ${rest}`);
  return parsed as string[];
}

/** Every `ENV KEY=VALUE` (unquoted values only, as ours are), later ones winning, as Docker's do. */
export function dockerEnv(steps: Step[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const step of steps.filter((s) => s.op === "ENV")) {
    for (const pair of step.rest.split(/\s+/)) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/.exec(pair);
      if (m === null) throw new Error(`ENV ${step.rest}: want KEY=VALUE pairs`);
      env[m[1] as string] = m[2] as string;
    }
  }
  return env;
}

/** The HEALTHCHECK's options (--interval=10s …) and its exec-form command. */
export function healthcheck(steps: Step[]): { options: Record<string, string>; command: string[] } {
  const rest = only(steps, "HEALTHCHECK");
  const at = rest.indexOf(" CMD ");
  if (at < 0) throw new Error(`HEALTHCHECK ${rest}: want options then CMD [...]`);
  const options: Record<string, string> = {};
  for (const option of rest.slice(0, at).trim().split(/\s+/)) {
    const m = /^--([a-z-]+)=(\S+)$/.exec(option);
    if (m === null) throw new Error(`HEALTHCHECK option ${option}: want --name=value`);
    options[m[1] as string] = m[2] as string;
  }
  return { options, command: execForm(rest.slice(at + 5).trim()) };
}

/** KEY=VALUE lines, as systemd's EnvironmentFile and `docker run --env-file` both read ours (no quoting). */
export function envFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1] as string] = m[2] as string;
  }
  return env;
}

/** The unit's [Service] settings (a key given twice keeps its last value, as systemd's do). */
export function service(text: string): Map<string, string> {
  const section = text.split(/^\[Service\]$/m)[1]?.split(/^\[/m)[0] ?? "";
  const settings = new Map<string, string>();
  for (const line of section.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) settings.set(m[1] as string, m[2] as string);
  }
  return settings;
}

/** systemd's `${NAME}` expansion: each one becomes exactly one argument. */
export function expand(word: string, env: Record<string, string>): string {
  return word.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, name: string) => {
    const value = env[name];
    if (value === undefined) throw new Error(`ExecStart uses \${${name}}, which the env file does not set`);
    return value;
  });
}

/** ExecStart split into words (ours quotes nothing), then expanded from `env`. */
export function execStart(settings: Map<string, string>, env: Record<string, string>): string[] {
  return (settings.get("ExecStart") ?? "")
    .split(/\s+/)
    .filter((w) => w !== "")
    .map((w) => expand(w, env));
}

/** systemd's time span in seconds for a bare number or `<n>s` / `<n>min` (what ours use). */
export function seconds(span: string): number {
  const m = /^(\d+)\s*(s|sec|min)?$/.exec(span.trim());
  if (m === null) throw new Error(`time span ${JSON.stringify(span)}: want <n>, <n>s or <n>min`);
  return Number(m[1]) * (m[2] === "min" ? 60 : 1);
}

/** The stop grace the Dockerfile's usage line gives `docker run --stop-timeout`, in seconds. */
export function dockerStopTimeout(text: string): number {
  const m = /--stop-timeout (\d+)/.exec(text);
  if (m === null) throw new Error("the Dockerfile's usage comment names no --stop-timeout");
  return Number(m[1]);
}

export interface EntrypointShell {
  /** The shell string after `exec`: what the container runs, with its variables still unexpanded. */
  script: string;
  /** $0 of the shell, which prefixes its own messages. */
  name: string;
}

/** The ENTRYPOINT as ours writes it: ["/bin/sh", "-c", "exec …", name]. */
export function entrypointShell(steps: Step[]): EntrypointShell {
  const entrypoint = execForm(only(steps, "ENTRYPOINT"));
  const [sh, flag, script, name] = entrypoint;
  if (
    sh !== "/bin/sh" ||
    flag !== "-c" ||
    script === undefined ||
    name === undefined ||
    entrypoint.length !== 4
  )
    throw new Error(`ENTRYPOINT ${JSON.stringify(entrypoint)}: want ["/bin/sh", "-c", "exec …", name]`);
  if (!script.startsWith("exec ")) throw new Error(`ENTRYPOINT's shell must exec the runner; got ${script}`);
  return { script: script.slice("exec ".length), name };
}

/** The words the ENTRYPOINT's shell would exec with `env` and `args` (CMD, or docker run's), or its refusal. */
export function entrypointWords(
  steps: Step[],
  env: Record<string, string>,
  args: string[],
): { status: number; stderr: string; words: string[] } {
  const { script, name } = entrypointShell(steps);
  const run = spawnSync("/bin/sh", ["-c", `printf '%s\\0' ${script}`, name, ...args], {
    env,
    encoding: "utf8",
  });
  const words = run.stdout.split("\0");
  words.pop();
  return { status: run.status ?? -1, stderr: run.stderr, words };
}
