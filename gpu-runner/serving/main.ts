// `npm run runner -- --model <hf-dir> [--lora name=dir ...]` (or vLLM's spellings: `<hf-dir> --lora-modules name=dir ...`, config.ts): the only file that reads process.env.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { renderUsage } from "citty";
import { EXIT, wantsHelp, wantsVersion } from "../../cli/flags.ts";
import { AppError } from "../../src/errors.ts";
import { createEngine } from "../engine/engine.ts";
import { parseConfig, RUNNER_ARGS } from "./config.ts";
import { DrainGate, runnerMembership } from "./fleet.ts";
import { createApp } from "./http/app.ts";
import { startMemberProcess } from "./member-process.ts";
import { buildRunner } from "./runtime.ts";

const COMMAND = {
  meta: { name: "runner", description: "multi-LoRA runner (OpenAI and vLLM API)" },
  args: RUNNER_ARGS,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "package.json"), "utf8"));
  return String((pkg as { version?: unknown }).version ?? "unknown");
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (wantsHelp(argv)) {
    console.log(await renderUsage(COMMAND));
    return;
  }
  if (wantsVersion(argv)) {
    console.log(`lora-edge runner ${version()}`);
    return;
  }
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(argv, process.env);
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    console.error(`runner: ${error.message}\nrun with --help for the flags`);
    process.exit(EXIT.usage);
  }
  const runner = await buildRunner(config, createEngine).catch((error: unknown) => {
    // a setting the engine refuses once it sees the model (--max-model-len beyond its limit) is still a
    // command-line mistake: the usage exit code, not a fault
    if (!(error instanceof AppError) || error.code !== "invalid_request") throw error;
    console.error(`runner: ${error.message}\nrun with --help for the flags`);
    process.exit(EXIT.usage);
  });
  // Drain (member-process.ts): SIGTERM or the edge's word stops new work, lets running requests finish, then
  // leaves; the app sees the gate so /ready fails meanwhile.
  const gate = new DrainGate();
  const app = createApp({ ...runner.deps, drain: gate });
  startMemberProcess({
    name: "runner",
    fetch: app.fetch,
    gate,
    host: config.host,
    port: config.port,
    fleet: config.fleet,
    membership: (where) => runnerMembership(runner.deps, { ...where, gate }),
    onListening: (port) => {
      const { info: model } = runner.deps.engine;
      const mode =
        runner.deps.tokenizer.mode === "token_ids"
          ? ", token-ids mode (no tokenizer.json: /v1/completions takes token-id prompts only)"
          : "";
      console.log(
        `runner: ${model.id} (${model.architecture}) on ${config.device}/${config.backend}, ${config.maxLoras} adapter slots${mode}, listening on http://${config.host}:${port}`,
      );
      // without a key no caller can be told from another, so the edge's tenant header is not trusted
      if (config.runnerToken === null)
        console.log(
          "runner: no API key (--api-key, VLLM_API_KEY or RUNNER_TOKEN): x-lora-edge-tenant is not honoured, every request is scheduled as the runner's own",
        );
    },
    close: () => runner.close(),
    process,
  });
}

main().catch((error: unknown) => {
  console.error(error instanceof AppError ? `runner: ${error.message}` : error);
  if (error instanceof AppError) for (const d of error.details.slice(1)) console.error(`  ${d}`);
  process.exit(1);
});
