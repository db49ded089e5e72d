// The deploy recipes cannot drift from the runner's CLI: Docker and systemd do not run here, so this reads the
// container recipe's ENTRYPOINT + CMD and the service unit's ExecStart (expanded with the example env file, as
// systemd's EnvironmentFile would) and parses their runner flags with the runner's own parseConfig; it also
// holds the parts the drain depends on (SIGTERM, a stop timeout, the secrets outside argv, the probes).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig, RUNNER_ARGS } from "../../gpu-runner/serving/config.ts";
import { PROBE_PATHS } from "../../gpu-runner/serving/http/auth.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

/** Dockerfile instructions, with `\` continuations joined and comments dropped. */
function instructions(text: string): { op: string; rest: string }[] {
  const lines = text
    .split("\n")
    .filter((l) => !/^\s*#/.test(l))
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  return lines.map((l) => {
    const at = l.search(/\s/);
    return { op: l.slice(0, at).toUpperCase(), rest: l.slice(at + 1).trim() };
  });
}

function only(list: { op: string; rest: string }[], op: string): string {
  const found = list.filter((i) => i.op === op);
  expect(found, `one ${op}`).toHaveLength(1);
  return (found[0] as { rest: string }).rest;
}

/** The exec (JSON) form: a shell form would put /bin/sh in front, and SIGTERM would not reach Node. */
function execForm(rest: string): string[] {
  const parsed: unknown = JSON.parse(rest);
  expect(Array.isArray(parsed) && parsed.every((a) => typeof a === "string"), rest).toBe(true);
  return parsed as string[];
}

/** KEY=VALUE lines, as systemd's EnvironmentFile reads them (no quoting is used in ours). */
function envFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1] as string] = m[2] as string;
  }
  return env;
}

/** The unit's [Service] settings (a key given twice keeps its last value, as systemd's do). */
function service(text: string): Map<string, string> {
  const section = text.split(/^\[Service\]$/m)[1]?.split(/^\[/m)[0] ?? "";
  const settings = new Map<string, string>();
  for (const line of section.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) settings.set(m[1] as string, m[2] as string);
  }
  return settings;
}

/** systemd's `${NAME}` expansion: each one becomes exactly one argument. */
function expand(word: string, env: Record<string, string>): string {
  return word.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, name: string) => {
    const value = env[name];
    if (value === undefined) throw new Error(`ExecStart uses \${${name}}, which the env file does not set`);
    return value;
  });
}

const SECRETS = { FLEET_TOKEN: "lek_test_fleet", RUNNER_TOKEN: "test-runner-token" };

describe("the container recipe", () => {
  const steps = instructions(read("deploy/runner.Dockerfile"));

  it("starts the runner with --join, and its flags parse with the runner's parseConfig", () => {
    const entrypoint = execForm(only(steps, "ENTRYPOINT"));
    const cmd = execForm(only(steps, "CMD"));
    expect(entrypoint.slice(0, 2)).toEqual(["node", "gpu-runner/serving/main.ts"]);
    expect(existsSync(join(ROOT, entrypoint[1] as string))).toBe(true);
    const argv = [...entrypoint.slice(2), ...cmd];
    const config = parseConfig(argv, SECRETS);
    expect(config.host).toBe("0.0.0.0");
    expect(config.fleet).not.toBeNull();
    expect(config.fleet?.token).toBe(SECRETS.FLEET_TOKEN);
    expect(config.runnerToken).toBe(SECRETS.RUNNER_TOKEN);
    // the secrets never ride on argv, where `ps` and `docker inspect` show them
    for (const flag of ["--api-key", "--fleet-token-file"]) expect(argv).not.toContain(flag);
    // what `docker run <image> --join … --advertise-url …` appends still parses
    const overridden = parseConfig(
      [...entrypoint.slice(2), "--join", "https://edge.example", "--advertise-url", "http://10.0.0.7:8000"],
      SECRETS,
    );
    expect(overridden.fleet).toMatchObject({
      edgeUrl: "https://edge.example",
      advertiseUrl: "http://10.0.0.7:8000",
    });
    expect(only(steps, "EXPOSE")).toBe(String(config.port));
    expect(only(steps, "VOLUME")).toContain(config.model);
  });

  it("runs on the pinned Node with npm ci, stops with SIGTERM and checks /health on the runner's port", () => {
    const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string> };
    expect(only(steps, "FROM")).toBe(`node:${pkg.dependencies.node}-bookworm-slim`);
    expect(steps.some((s) => s.op === "RUN" && /\bnpm ci\b/.test(s.rest))).toBe(true);
    expect(only(steps, "STOPSIGNAL")).toBe("SIGTERM");
    const entrypoint = execForm(only(steps, "ENTRYPOINT"));
    const config = parseConfig([...entrypoint.slice(2), ...execForm(only(steps, "CMD"))], SECRETS);
    const check = only(steps, "HEALTHCHECK");
    expect(check).toContain(`http://127.0.0.1:${config.port}/health`);
    expect(PROBE_PATHS).toContain("/health");
    expect(PROBE_PATHS).toContain("/ready");
  });
});

describe("the service unit", () => {
  const settings = service(read("deploy/lora-edge-runner.service"));
  const example = envFile(read("deploy/runner.env.example"));

  it("starts the runner with --join from the env file, and its flags parse with parseConfig", () => {
    const words = (settings.get("ExecStart") ?? "").split(/\s+/).filter((w) => w !== "");
    expect(words[0]).toMatch(/\/node_modules\/\.bin\/node$/);
    expect(words[1]).toBe("gpu-runner/serving/main.ts");
    expect(existsSync(join(ROOT, words[1] as string))).toBe(true);
    const argv = words.slice(2).map((w) => expand(w, example));
    // parsed with the env file as the runner's environment: the tokens come from there, not argv
    const config = parseConfig(argv, example);
    expect(config.fleet).toMatchObject({
      edgeUrl: example.EDGE_URL,
      advertiseUrl: example.ADVERTISE_URL,
      token: example.FLEET_TOKEN,
    });
    expect(config.runnerToken).toBe(example.RUNNER_TOKEN);
    expect(config.model).toBe(example.MODEL_DIR);
    for (const flag of ["--api-key", "--fleet-token-file"]) expect(argv).not.toContain(flag);
    for (const word of argv.filter((w) => w.startsWith("--")))
      expect(Object.keys(RUNNER_ARGS)).toContain(word.slice(2));
  });

  it("reads its secrets from an env file and drains on SIGTERM within TimeoutStopSec", () => {
    expect(settings.get("EnvironmentFile")).toMatch(/^\/etc\/lora-edge\/runner\.env$/);
    expect(Object.keys(example)).toEqual(expect.arrayContaining(["FLEET_TOKEN", "RUNNER_TOKEN"]));
    expect(settings.get("KillSignal")).toBe("SIGTERM");
    // only the runner gets SIGTERM; the rest of the unit is killed only when the timeout runs out
    expect(settings.get("KillMode")).toBe("mixed");
    expect(Number(settings.get("TimeoutStopSec"))).toBeGreaterThanOrEqual(60);
    expect(settings.get("Restart")).toBe("on-failure");
  });
});
