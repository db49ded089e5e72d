// The command-line tools as scripts and CI run them: `publish-adapter --dry-run --base-config` validates a
// real PEFT folder against a Hugging Face config.json with no edge at all (name, and version, from the
// folder's name); with --json every command prints one JSON object on stdout, an error as the HTTP API's
// `{"error": {...}}` envelope; and the exit code is the same with and without --json: usage 2, refused 1,
// edge unreachable 3.
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../scripts/lib/processes.ts";
import { ErrorEnvelopeSchema } from "../../src/contracts/openai.ts";
import { runScript, type ScriptRun } from "../helpers/run-script.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const MODEL = join(ROOT, "test", "fixtures", "hf", "tiny-llama");
const QV = join(MODEL, "adapters", "qv");

/** Runs a script to its end in its own process group, with no edge settings but those given. */
function run(script: string, args: string[], env: Record<string, string> = {}): Promise<ScriptRun> {
  const { EDGE_URL: _u, EDGE_TOKEN: _t, ...base } = process.env;
  return runScript(script, args, { cwd: ROOT, env: { ...base, ...env } });
}

/** stdout is exactly one JSON line. */
function onlyJson(out: string): unknown {
  const lines = out.split("\n").filter((l) => l !== "");
  expect(lines, out).toHaveLength(1);
  return JSON.parse(lines[0] as string);
}

/** Runs with and without --json: same exit code; the JSON run prints one error envelope and nothing on stderr. */
async function failsAlike(script: string, args: string[], env: Record<string, string> = {}) {
  const plain = await run(script, args, env);
  const json = await run(script, [...args, "--json"], env);
  expect(json.code).toBe(plain.code);
  expect(plain.stdout).toBe("");
  expect(plain.stderr).toMatch(/^error: /m);
  expect(plain.stderr).not.toMatch(/\n\s+at /);
  expect(json.stderr).toBe("");
  const envelope = ErrorEnvelopeSchema.parse(onlyJson(json.stdout));
  expect(plain.stderr).toContain(envelope.error.message);
  return { code: plain.code, error: envelope.error };
}

let work: string;
let unreachable: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "lora-edge-cli-"));
  unreachable = `http://127.0.0.1:${await freePort()}`;
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe("publish-adapter --dry-run --base-config, offline", () => {
  it("validates a PEFT folder against a config.json, the name from the folder, no edge and no key", async () => {
    const text = await run("scripts/publish-adapter.ts", [
      QV,
      "--dry-run",
      "--base-config",
      join(MODEL, "config.json"),
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toBe("dry run: qv is valid for tiny-llama; nothing uploaded\n");
    expect(text.stderr).toContain("valid: qv: 4 adapted modules, F32");
    expect(text.stderr).toContain("offline");

    const json = await run("scripts/publish-adapter.ts", [
      QV,
      "--dry-run",
      "--base-config",
      join(MODEL, "config.json"),
      "--base",
      "llama-tiny",
      "--json",
    ]);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toBe("");
    expect(onlyJson(json.stdout)).toEqual({
      object: "dry_run",
      name: "qv",
      version: null,
      base: "llama-tiny",
      offline: true,
      modules: 4,
      dtype: "F32",
      sizeBytes: expect.any(Number),
      uploaded: false,
    });
  });

  it("reads <name>@<N> as the name and version, from the folder or --name", async () => {
    const dir = join(work, "support@3");
    await cp(QV, dir, { recursive: true });
    const config = join(MODEL, "config.json");
    const fromFolder = await run("scripts/publish-adapter.ts", [
      dir,
      "--dry-run",
      "--base-config",
      config,
      "--json",
    ]);
    expect(fromFolder.code, fromFolder.stderr).toBe(0);
    expect(onlyJson(fromFolder.stdout)).toMatchObject({ name: "support", version: 3 });
    const fromFlag = await run("scripts/publish-adapter.ts", [
      dir,
      "--name",
      "billing",
      "--dry-run",
      "--base-config",
      config,
    ]);
    expect(fromFlag.stdout).toBe("dry run: billing is valid for tiny-llama; nothing uploaded\n");
  });

  it("refuses an adapter the base does not fit (exit 1), every problem in the envelope's details", async () => {
    const config = join(work, "wider", "config.json");
    await mkdir(join(work, "wider"), { recursive: true });
    const tiny = JSON.parse(await readFile(join(MODEL, "config.json"), "utf8")) as Record<string, unknown>;
    await writeFile(config, JSON.stringify({ ...tiny, hidden_size: 128, head_dim: 32 }));
    const { code, error } = await failsAlike("scripts/publish-adapter.ts", [
      QV,
      "--dry-run",
      "--base-config",
      config,
    ]);
    expect(code).toBe(1);
    expect(error.code).toBe("invalid_adapter");
    expect(error.details?.length).toBeGreaterThan(1);
    expect(error.details?.every((d) => d.startsWith('adapter "qv"'))).toBe(true);
  });

  it("refuses usage mistakes with exit 2 (a folder name that is no adapter name, --base-config without --dry-run), a missing folder with 1", async () => {
    const dir = join(work, "Not A Name");
    await cp(QV, dir, { recursive: true });
    const config = join(MODEL, "config.json");
    const badName = await failsAlike("scripts/publish-adapter.ts", [
      dir,
      "--dry-run",
      "--base-config",
      config,
    ]);
    expect(badName.code).toBe(2);
    expect(badName.error.message).toContain("adapter name must be");
    expect(badName.error.message).toContain('got "Not A Name"; pass --name');
    const notDry = await failsAlike("scripts/publish-adapter.ts", [QV, "--base-config", config]);
    expect(notDry.code).toBe(2);
    expect(notDry.error).toMatchObject({ param: "base-config", code: "invalid_request" });
    const noConfig = await failsAlike("scripts/publish-adapter.ts", [
      QV,
      "--dry-run",
      "--base-config",
      join(work, "none.json"),
    ]);
    expect(noConfig.code).toBe(2);
    expect(noConfig.error.message).toContain("--base-config: cannot read");
    const noDir = await failsAlike("scripts/publish-adapter.ts", [
      join(work, "missing"),
      "--dry-run",
      "--base-config",
      config,
    ]);
    // a folder without the PEFT files is refused as an adapter (exit 1), as the edge would refuse it
    expect(noDir.code).toBe(1);
    expect(noDir.error.message).toContain("adapter_model.safetensors: not found");
  });
});

describe("--json errors and exit codes", () => {
  const edge = () => ({ EDGE_URL: unreachable, EDGE_TOKEN: "lek_unused" });

  it("publish-adapter: an unreachable edge exits 3 with an `unavailable` envelope", async () => {
    const { code, error } = await failsAlike(
      "scripts/publish-adapter.ts",
      [QV, "--base", "tiny-llama"],
      edge(),
    );
    expect(code).toBe(3);
    expect(error).toMatchObject({ code: "unavailable", type: "server_error" });
    expect(error.message).toContain(`cannot reach the edge at ${unreachable}`);
  });

  it("publish-adapter: missing settings, unknown flags and missing arguments exit 2", async () => {
    expect((await failsAlike("scripts/publish-adapter.ts", [QV, "--base", "b"])).error.message).toBe(
      "endpoint: pass --endpoint or set EDGE_URL",
    );
    const typo = await failsAlike(
      "scripts/publish-adapter.ts",
      [QV, "--base", "b", "--alais", "prod"],
      edge(),
    );
    expect(typo.code).toBe(2);
    expect(typo.error.message).toContain("did you mean --alias?");
    const missing = await failsAlike("scripts/publish-adapter.ts", ["--dry-run"]);
    expect(missing.code).toBe(2);
    expect(missing.error.message).toBe("Missing required positional argument: DIR");
    const size = await failsAlike(
      "scripts/publish-adapter.ts",
      [QV, "--base", "b", "--part-mib", "4"],
      edge(),
    );
    expect(size.code).toBe(2);
    expect(size.error.param).toBe("part-mib");
  });

  it.each([
    [["list"]],
    [["show", "r"]],
    [["create", "r", "--variants", "a=x@1:100%"]],
    [["set-weights", "r", "--weights", "a=100%"]],
    [["pause", "r"]],
    [["resume", "r"]],
    [["promote", "r", "--variant", "a", "--alias", "prod"]],
    [["stop", "r"]],
    [["compare", "--models", "a@1,a@2", "--prompt", "hi"]],
  ])("experiment %j: unreachable exits 3, missing key exits 2, alike with --json", async (args) => {
    expect((await failsAlike("scripts/experiment.ts", args, edge())).code).toBe(3);
    const noKey = await failsAlike("scripts/experiment.ts", args, { EDGE_URL: unreachable });
    expect(noKey.code).toBe(2);
    expect(noKey.error.message).toBe("token: pass --token or set EDGE_TOKEN");
  });

  it("experiment: bad flag values, missing arguments and unknown subcommands exit 2", async () => {
    const weight = await failsAlike(
      "scripts/experiment.ts",
      ["create", "r", "--variants", "a=x:200%"],
      edge(),
    );
    expect(weight.code).toBe(2);
    expect(weight.error.message).toContain("--variants: a weight is basis points");
    const missing = await failsAlike("scripts/experiment.ts", ["create", "r"], edge());
    expect(missing.code).toBe(2);
    expect(missing.error.message).toBe("Missing required argument: --variants");
    const unknown = await failsAlike("scripts/experiment.ts", ["bogus"], edge());
    expect(unknown.code).toBe(2);
    expect(unknown.error.message).toBe("Unknown command bogus");
  });

  it("make-demo-model: a bad value exits 2, and --json reports what it wrote", async () => {
    expect(
      (await failsAlike("scripts/make-demo-model.ts", ["--out", join(work, "m"), "--seed", "x"])).code,
    ).toBe(2);
    const out = join(work, "demo");
    const made = await run("scripts/make-demo-model.ts", ["--out", out, "--adapters", "1", "--json"]);
    expect(made.code, made.stderr).toBe(0);
    expect(onlyJson(made.stdout)).toEqual({ model: out, adapters: [join(`${out}-adapters`, "demo-0")] });
  });

  it.each(["scripts/publish-adapter.ts", "scripts/experiment.ts", "scripts/make-demo-model.ts"])(
    "%s --version prints the package's version",
    async (script) => {
      const version = await run(script, ["--version"]);
      expect(version.code).toBe(0);
      expect(version.stdout).toMatch(/^lora-edge [a-z-]+ \d+\.\d+\.\d+\n$/);
    },
  );
});
