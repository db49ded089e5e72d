// `npm run runner -- --model <hf-dir> [--lora name=dir ...]`: the only file that reads process.env.
import { serve } from "@hono/node-server";
import { AppError } from "../../src/errors.ts";
import { parseConfig } from "./config.ts";
import { createEngine } from "../engine/engine.ts";
import { buildRunner } from "./runtime.ts";
import { createApp } from "./http/app.ts";

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2), process.env);
  const runner = await buildRunner(config, createEngine);
  const app = createApp(runner.deps);
  const server = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, (info) => {
    const { info: model } = runner.deps.engine;
    const mode =
      runner.deps.tokenizer.mode === "token_ids"
        ? ", token-ids mode (no tokenizer.json: /v1/completions takes token-id prompts only)"
        : "";
    console.log(
      `runner: ${model.id} (${model.architecture}) on ${config.device}/${config.backend}, ${config.maxLoras} adapter slots${mode}, listening on http://${config.host}:${info.port}`,
    );
  });
  const stop = () => {
    server.close();
    void runner.close().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((error: unknown) => {
  console.error(error instanceof AppError ? `runner: ${error.message}` : error);
  if (error instanceof AppError) for (const d of error.details.slice(1)) console.error(`  ${d}`);
  process.exit(1);
});
