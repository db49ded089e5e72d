// The deploy recipes cannot drift from the runner's CLI: this reads what the container's ENTRYPOINT execs (a
// real /bin/sh expands it from the container's ENV and the env example, as Docker would) and the service unit's
// ExecStart (expanded with the example env file, as systemd's EnvironmentFile would) and parses their runner
// flags with the runner's own parseConfig; it also holds the parts the drain depends on (SIGTERM, a stop
// timeout both recipes share, the secrets outside argv, the probes). The e2e test
// deploy-recipes-serve-join-and-drain-as-their-managers-run-them.test.ts runs them.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig, RUNNER_ARGS } from "../../gpu-runner/serving/config.ts";
import { PROBE_PATHS } from "../../gpu-runner/serving/http/auth.ts";
import {
  dockerEnv,
  dockerStopTimeout,
  entrypointWords,
  envFile,
  execForm,
  execStart,
  healthcheck,
  instructions,
  only,
  ROOT,
  read,
  seconds,
  service,
} from "../helpers/deploy-recipes.ts";

const dockerfile = read("deploy/runner.Dockerfile");
const steps = instructions(dockerfile);
const example = envFile(read("deploy/runner.env.example"));
const settings = service(read("deploy/lora-edge-runner.service"));

/** The container's environment under `docker run --env-file runner.env`: the image's ENV, then the file's. */
const containerEnv = (extra: Record<string, string> = {}) => ({ ...dockerEnv(steps), ...example, ...extra });

describe("the container recipe", () => {
  it("execs the runner with --join from EDGE_URL, and its flags parse with the runner's parseConfig", () => {
    const cmd = execForm(only(steps, "CMD"));
    const run = entrypointWords(steps, containerEnv(), cmd);
    expect(run.stderr).toBe("");
    expect(run.words.slice(0, 2)).toEqual(["node", "gpu-runner/serving/main.ts"]);
    expect(existsSync(join(ROOT, run.words[1] as string))).toBe(true);
    const argv = run.words.slice(2);
    const config = parseConfig(argv, containerEnv());
    expect(config.host).toBe("0.0.0.0");
    expect(config.fleet).toMatchObject({
      edgeUrl: example.EDGE_URL,
      advertiseUrl: example.ADVERTISE_URL,
      token: example.FLEET_TOKEN,
    });
    expect(config.runnerToken).toBe(example.RUNNER_TOKEN);
    // the secrets never ride on argv, where `ps` and `docker inspect` show them
    for (const flag of ["--api-key", "--fleet-token-file"]) expect(argv).not.toContain(flag);
    expect(argv.join(" ")).not.toContain(example.FLEET_TOKEN);
    expect(only(steps, "EXPOSE")).toBe(String(config.port));
    expect(only(steps, "VOLUME")).toContain(config.model);
  });

  it("appends the flags after the image name, each as one argument", () => {
    const run = entrypointWords(steps, containerEnv(), ["--capacity", "2", "--served-model-name", "a b"]);
    const config = parseConfig(run.words.slice(2), containerEnv());
    expect(config.fleet?.capacity).toBe(2);
    expect(run.words.slice(-2)).toEqual(["--served-model-name", "a b"]);
  });

  it("stops before the runner starts, naming the variable, when EDGE_URL or ADVERTISE_URL is unset", () => {
    for (const name of ["EDGE_URL", "ADVERTISE_URL"]) {
      const env: Record<string, string> = containerEnv();
      delete env[name];
      const run = entrypointWords(steps, env, []);
      expect(run.status).toBe(2);
      expect(run.words).toEqual([]);
      expect(run.stderr).toContain(name);
    }
  });

  it("runs on the pinned Node with npm ci, stops with SIGTERM, checks /health on $PORT, waits as the unit does", () => {
    const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string> };
    expect(only(steps, "FROM")).toBe(`node:${pkg.dependencies.node}-bookworm-slim`);
    expect(steps.some((s) => s.op === "RUN" && /\bnpm ci\b/.test(s.rest))).toBe(true);
    expect(only(steps, "STOPSIGNAL")).toBe(settings.get("KillSignal"));
    expect(dockerEnv(steps).PORT).toBe(only(steps, "EXPOSE"));
    const check = healthcheck(steps);
    expect(check.command.slice(0, 2)).toEqual(["node", "-e"]);
    expect(check.command[2]).toContain("process.env.PORT");
    expect(check.command[2]).toContain("/health");
    expect(PROBE_PATHS).toContain("/health");
    expect(PROBE_PATHS).toContain("/ready");
    // docker stop's grace is the unit's TimeoutStopSec: one drain budget, whichever manager runs it
    expect(dockerStopTimeout(dockerfile)).toBe(seconds(settings.get("TimeoutStopSec") ?? ""));
  });
});

describe("the service unit", () => {
  it("starts the runner with --join from the env file, and its flags parse with parseConfig", () => {
    const words = execStart(settings, example);
    expect(words[0]).toBe(`${settings.get("WorkingDirectory")}/node_modules/.bin/node`);
    expect(words[1]).toBe("gpu-runner/serving/main.ts");
    expect(existsSync(join(ROOT, words[1] as string))).toBe(true);
    const argv = words.slice(2);
    // parsed with the env file as the runner's environment: the tokens come from there, not argv
    const config = parseConfig(argv, example);
    expect(config.fleet).toMatchObject({
      edgeUrl: example.EDGE_URL,
      advertiseUrl: example.ADVERTISE_URL,
      token: example.FLEET_TOKEN,
    });
    expect(config.runnerToken).toBe(example.RUNNER_TOKEN);
    expect(config.model).toBe(example.MODEL_DIR);
    expect(String(config.port)).toBe(example.PORT);
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
    expect(seconds(settings.get("TimeoutStopSec") ?? "")).toBeGreaterThanOrEqual(60);
    expect(settings.get("Restart")).toBe("on-failure");
  });
});
