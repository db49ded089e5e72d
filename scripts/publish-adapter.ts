// `npm run publish-adapter -- <peft-dir> --name <name> --base <base-model-id> [--alias prod] [--dry-run]`
// Validates the adapter locally with the same code the edge runs, uploads the weights (multipart above a
// threshold), publishes a version and prints it. A refusal exits non-zero with the edge's message.
import { createReadStream } from "node:fs";
import { defineCommand } from "citty";
import { SingleBar } from "cli-progress";
import { createEdgeClient, EdgeError } from "../cli/edge-client.ts";
import { runChecked } from "../cli/flags.ts";
import { openPeftDir, type PeftDir, sha256File } from "../gpu-runner/engine/model/peft-dir.ts";
import { nonFiniteProblemsOf } from "../src/adapters/finite-weights.ts";
import { validateAdapter } from "../src/adapters/validate.ts";
import { problemsError } from "../src/contracts/issues.ts";
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

function fail(error: unknown): never {
  if (error instanceof EdgeError || error instanceof AppError) {
    console.error(`error: ${error.message}`);
    for (const detail of error.details.length > 1 ? error.details : []) console.error(`  - ${detail}`);
  } else {
    console.error(`error: ${(error as Error).message ?? String(error)}`);
  }
  process.exit(1);
}

function setting(flag: string | undefined, envName: string, what: string): string {
  const value = flag ?? process.env[envName];
  if (!value) fail(new AppError("invalid_request", `${what}: pass --${what} or set ${envName}`));
  return value;
}

/** A size flag in MiB; R2 refuses parts under 5 MiB (but the last). */
function mebibytes(value: string, flag: string, min: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) {
    fail(
      new AppError("invalid_request", `--${flag}: must be a number >= ${min}; got ${JSON.stringify(value)}`),
    );
  }
  return n * MiB;
}

function summary(name: string, dir: PeftDir, modules: number, dtype: string): string {
  return `${name}: ${modules} adapted modules, ${dtype}, ${dir.sizeBytes} bytes`;
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
    name: { type: "string", required: true, description: "adapter name in the registry" },
    base: { type: "string", required: true, description: "base model id registered at the edge" },
    alias: { type: "string", description: "alias to point at the new version (e.g. prod)" },
    description: { type: "string", description: "free text stored with the version" },
    "dry-run": { type: "boolean", default: false, description: "validate locally, upload nothing" },
    json: { type: "boolean", default: false, description: "print the published version as JSON" },
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
      const endpoint = setting(args.endpoint, "EDGE_URL", "endpoint");
      const token = setting(args.token, "EDGE_TOKEN", "token");
      const multipartThreshold = mebibytes(args["multipart-mib"], "multipart-mib", 0);
      const partSize = mebibytes(args["part-mib"], "part-mib", 5);
      const edge = createEdgeClient({ endpoint, token });
      const dir = await openPeftDir(args.dir);
      const base = await edge.baseModel(args.base);
      const validated = validateAdapter({
        name: args.name,
        config: dir.config,
        header: dir.header,
        spec: base.spec,
      });
      // The header check above cannot see values: NaN or ±Inf weights are refused here, before any upload.
      const nonFinite = await nonFiniteProblemsOf(dir.header, createReadStream(dir.weightsPath));
      if (nonFinite.length > 0) {
        throw problemsError(
          "invalid_adapter",
          nonFinite.map((p) => `adapter "${args.name}": ${p}`),
        );
      }
      console.error(
        `valid: ${summary(args.name, dir, validated.modules.length, validated.dtype)} for base ${base.id}`,
      );
      if (args["dry-run"]) {
        console.log(`dry run: ${args.name} is valid for ${base.id}; nothing uploaded`);
        return;
      }
      const hashing = progress("hashing  ", dir.sizeBytes);
      const sha256 = await sha256File(dir.weightsPath, hashing.update);
      hashing.stop();
      const uploading = progress("uploading", dir.sizeBytes);
      const staged = await edge.upload({
        path: dir.weightsPath,
        sizeBytes: dir.sizeBytes,
        sha256,
        multipartThreshold,
        partSize,
        onProgress: uploading.update,
      });
      uploading.stop();
      const published = await edge.publish(args.name, {
        upload: staged.upload,
        base: base.id,
        config: dir.config,
        ...(args.alias ? { alias: args.alias } : {}),
        ...(args.description ? { description: args.description } : {}),
      });
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
      fail(error);
    }
  },
});

await runChecked(command);
