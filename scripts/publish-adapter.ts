// `npm run publish-adapter -- <peft-dir> [--name <name>[@N]] --base <base-model-id> [--alias prod] [--dry-run]`
// Validates the adapter locally with the same code the edge runs, uploads the weights (multipart above a
// threshold), publishes a version and prints it. `--dry-run --base-config <config.json>` validates offline.
// A failure exits with cli/report.ts's code (usage 2, refused 1, unreachable 3) and the edge's message.
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { defineCommand } from "citty";
import { SingleBar } from "cli-progress";
import { createEdgeClient } from "../cli/edge-client.ts";
import { runChecked } from "../cli/flags.ts";
import { reportFailure } from "../cli/report.ts";
import { openPeftDir, type PeftDir, sha256File } from "../gpu-runner/engine/model/peft-dir.ts";
import { nonFiniteProblemsOf } from "../src/adapters/finite-weights.ts";
import { validateAdapter } from "../src/adapters/validate.ts";
import { type BaseModelSpec, baseModelSpecFromConfig } from "../src/contracts/base-model.ts";
import { problemsError } from "../src/contracts/issues.ts";
import { isValidName, NAME_RULE } from "../src/contracts/names.ts";
import { AppError } from "../src/errors.ts";

const MiB = 1024 * 1024;

function progress(label: string, total: number): { update: (n: number) => void; stop: () => void } {
  // A bar only where a person watches, and only when there is something to wait for.
  if (!process.stderr.isTTY || total < 8 * MiB) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% {value}/{total} bytes`,
    stream: process.stderr,
  });
  bar.start(total, 0);
  return { update: (n) => bar.update(n), stop: () => bar.stop() };
}

/** A mistake on the command line: exit code 2 (cli/report.ts). */
function usage(param: string, message: string): AppError {
  return new AppError("invalid_request", message, { param });
}

function setting(flag: string | undefined, envName: string, what: string): string {
  const value = flag ?? process.env[envName];
  if (!value) throw usage(what, `${what}: pass --${what} or set ${envName}`);
  return value;
}

/** A size flag in MiB; R2 refuses parts under 5 MiB (but the last). */
function mebibytes(value: string, flag: string, min: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min) {
    throw usage(flag, `--${flag}: must be a number >= ${min}; got ${JSON.stringify(value)}`);
  }
  return n * MiB;
}

function summary(name: string, dir: PeftDir, modules: number, dtype: string): string {
  return `${name}: ${modules} adapted modules, ${dtype}, ${dir.sizeBytes} bytes`;
}

interface Target {
  name: string;
  /** The version this publish must become (`<name>@<N>`), or null for whatever number the edge gives. */
  version: number | null;
}

/** `--name`, else the folder's name; either may be `<name>@<N>`, the version the publish must become. */
function targetOf(nameFlag: string | undefined, dir: string): Target {
  const from = nameFlag === undefined ? `the folder name of ${dir}` : "--name";
  const raw = nameFlag ?? basename(resolve(dir));
  const match = /^(.*)@(\d+)$/.exec(raw);
  const name = match ? (match[1] as string) : raw;
  const version = match ? Number(match[2]) : null;
  const hint = nameFlag === undefined ? "; pass --name" : "";
  if (!isValidName(name)) {
    throw usage("name", `${from}: adapter name must be ${NAME_RULE}; got ${JSON.stringify(name)}${hint}`);
  }
  if (version !== null && version < 1) {
    throw usage("name", `${from}: the version after @ must be >= 1; got ${JSON.stringify(raw)}${hint}`);
  }
  return { name, version };
}

/** The base from a Hugging Face config.json on disk, for an offline --dry-run. */
async function localBase(path: string, id: string | undefined): Promise<{ id: string; spec: BaseModelSpec }> {
  let config: unknown;
  try {
    config = JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw usage("base-config", `--base-config: cannot read ${path} as JSON (${(error as Error).message})`);
  }
  const baseId = id ?? basename(dirname(resolve(path)));
  return { id: baseId, spec: await baseModelSpecFromConfig(baseId, config) };
}

async function openDir(dir: string): Promise<PeftDir> {
  try {
    return await openPeftDir(dir);
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw usage("dir", `${dir}: cannot read a PEFT adapter folder (${(error as Error).message})`);
  }
}

const command = defineCommand({
  meta: {
    name: "publish-adapter",
    description: "Validate and publish a PEFT LoRA adapter to the edge registry",
  },
  args: {
    dir: {
      type: "positional",
      required: true,
      description: "PEFT adapter directory (adapter_config.json + adapter_model.safetensors)",
    },
    name: {
      type: "string",
      description:
        "adapter name in the registry; <name>@<N> also says the version it must become (refused if the edge's next is not N). Default: the folder's name, read the same way (support@3/ publishes support, as version 3)",
    },
    base: {
      type: "string",
      description:
        "base model id registered at the edge (with --base-config: the id to report; default the config's folder name)",
    },
    "base-config": {
      type: "string",
      description:
        "with --dry-run: a Hugging Face config.json of the base, to validate against offline (no edge, no key)",
    },
    alias: { type: "string", description: "alias to point at the new version (e.g. prod)" },
    description: { type: "string", description: "free text stored with the version" },
    "dry-run": { type: "boolean", default: false, description: "validate locally, upload nothing" },
    json: {
      type: "boolean",
      default: false,
      description:
        'print the result as JSON (the published version, or the dry run); errors as {"error": {...}}',
    },
    endpoint: { type: "string", description: "edge URL (or EDGE_URL)" },
    token: { type: "string", description: "API key with scope publish (or EDGE_TOKEN)" },
    "multipart-mib": {
      type: "string",
      default: "64",
      description: "files above this many MiB upload in parts",
    },
    "part-mib": { type: "string", default: "16", description: "multipart part size in MiB (R2 needs >= 5)" },
  },
  async run({ args }) {
    try {
      const target = targetOf(args.name, args.dir);
      const label = target.version === null ? target.name : `${target.name}@${target.version}`;
      const baseConfig = args["base-config"];
      if (baseConfig !== undefined && !args["dry-run"]) {
        throw usage(
          "base-config",
          "--base-config: validates offline with --dry-run only; a publish checks against the base registered at the edge (add --dry-run, or pass --base instead)",
        );
      }
      if (baseConfig === undefined && !args.base) {
        throw usage(
          "base",
          "--base: pass the base model id registered at the edge (or, with --dry-run, --base-config <config.json>)",
        );
      }
      const edge =
        baseConfig === undefined
          ? createEdgeClient({
              endpoint: setting(args.endpoint, "EDGE_URL", "endpoint"),
              token: setting(args.token, "EDGE_TOKEN", "token"),
            })
          : null;
      const multipartThreshold = mebibytes(args["multipart-mib"], "multipart-mib", 0);
      const partSize = mebibytes(args["part-mib"], "part-mib", 5);
      const dir = await openDir(args.dir);
      const base =
        edge === null
          ? await localBase(baseConfig as string, args.base)
          : await edge.baseModel(args.base as string);
      const validated = validateAdapter({
        name: target.name,
        config: dir.config,
        header: dir.header,
        spec: base.spec,
      });
      // The header check above cannot see values: NaN or ±Inf weights are refused here, before any upload.
      const nonFinite = await nonFiniteProblemsOf(dir.header, createReadStream(dir.weightsPath));
      if (nonFinite.length > 0) {
        throw problemsError(
          "invalid_adapter",
          nonFinite.map((p) => `adapter "${target.name}": ${p}`),
        );
      }
      if (target.version !== null && edge !== null) {
        const next = await edge.nextVersion(target.name);
        if (next !== target.version) {
          throw new AppError(
            "conflict",
            `${label}: the edge's next version of ${target.name} is ${next}, not ${target.version}; publish as ${target.name} (or rename the folder) to take ${next}`,
            { param: "name" },
          );
        }
      }
      if (!args.json) {
        console.error(
          `valid: ${summary(label, dir, validated.modules.length, validated.dtype)} for base ${base.id}${edge === null ? ` (${baseConfig}, offline)` : ""}`,
        );
      }
      if (args["dry-run"]) {
        if (args.json) {
          console.log(
            JSON.stringify({
              object: "dry_run",
              name: target.name,
              version: target.version,
              base: base.id,
              offline: edge === null,
              modules: validated.modules.length,
              dtype: validated.dtype,
              sizeBytes: dir.sizeBytes,
              uploaded: false,
            }),
          );
          return;
        }
        console.log(`dry run: ${label} is valid for ${base.id}; nothing uploaded`);
        return;
      }
      // a real publish has an edge: --base-config without --dry-run was refused above
      const client = edge as NonNullable<typeof edge>;
      const hashing = progress("hashing  ", dir.sizeBytes);
      const sha256 = await sha256File(dir.weightsPath, hashing.update);
      hashing.stop();
      const uploading = progress("uploading", dir.sizeBytes);
      const staged = await client.upload({
        path: dir.weightsPath,
        sizeBytes: dir.sizeBytes,
        sha256,
        multipartThreshold,
        partSize,
        onProgress: uploading.update,
      });
      uploading.stop();
      const published = await client.publish(target.name, {
        upload: staged.upload,
        base: base.id,
        config: dir.config,
        ...(args.alias ? { alias: args.alias } : {}),
        ...(args.description ? { description: args.description } : {}),
      });
      // the check before the upload cannot hold off a publish that lands in between: say so, never hide it
      if (target.version !== null && published.version !== target.version) {
        throw new AppError(
          "conflict",
          `${label}: another publish took version ${target.version} meanwhile; this one was published as ${published.name}@${published.version}`,
          { param: "name" },
        );
      }
      if (args.json) {
        console.log(JSON.stringify(published));
        return;
      }
      console.log(`published ${published.name}@${published.version}`);
      console.log(`  digest   sha256:${published.weightsSha256}`);
      console.log(`  adapter  ${published.adapterId}`);
      console.log(
        `  aliases  ${published.aliases.length > 0 ? published.aliases.map((a) => `${published.name}@${a} -> ${published.version}`).join(", ") : "(none)"}`,
      );
    } catch (error) {
      reportFailure(error, args.json);
    }
  },
});

await runChecked(command);
