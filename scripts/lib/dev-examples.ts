// What `npm start` prints once everything is up: where things are, the credentials (in full only when they
// were just made), and examples that work as printed from the repository folder.
import type { Credentials, Published } from "./dev-setup.ts";

export interface ExamplesInput {
  edgeUrl: string;
  runners: string[];
  base: string;
  published: Published[];
  credentials: Credentials;
  credentialsPath: string;
  showSecrets: boolean;
  /** The first request to show; default: the first published adapter (or the base) saying "Hello!". */
  ask?: { model: string; messages: { role: "system" | "user"; content: string }[]; maxTokens: number };
}

const shown = (secret: string | null, full: boolean) =>
  secret === null ? "(none)" : full ? secret : `${secret.slice(0, 8)}…`;

export function examples(input: ExamplesInput): string {
  const { edgeUrl, credentials: c } = input;
  const ask = input.ask ?? {
    model: input.published[0] ? `${input.published[0].name}@prod` : input.base,
    messages: [{ role: "user", content: "Hello!" }],
    maxTokens: 20,
  };
  const model = ask.model;
  const fresh = input.published.filter((p) => p.fresh).map((p) => `${p.name}@${p.version}`);
  const keyFromFile = `export LORA_EDGE_KEY=$(node -p 'require(${JSON.stringify(input.credentialsPath)}).tenantKey')`;
  const body = JSON.stringify({ model, messages: ask.messages, max_tokens: ask.maxTokens });
  const sdk = [
    `import OpenAI from "openai";`,
    `const client = new OpenAI({ baseURL: "${edgeUrl}/v1", apiKey: process.env.LORA_EDGE_KEY });`,
    `const stream = await client.chat.completions.create({ model: "${model}", stream: true, max_tokens: ${ask.maxTokens}, messages: ${JSON.stringify(ask.messages)} });`,
    `for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");`,
    "console.log();",
  ].join(" ");
  const lines = [
    "",
    "lora-edge is running (Ctrl-C stops everything)",
    `  edge      ${edgeUrl}   OpenAI-compatible: /v1/chat/completions, /v1/completions, /v1/models`,
    `  runners   ${input.runners.join(", ")}`,
    `  base      ${input.base}`,
    `  adapters  ${input.published.map((p) => `${p.name}@prod`).join(", ") || "(none found)"}${fresh.length > 0 ? `   published now: ${fresh.join(", ")}` : ""}`,
    "",
    input.showSecrets
      ? `Credentials, shown this once (kept in ${input.credentialsPath}, mode 600):`
      : `Credentials (in full in ${input.credentialsPath}):`,
    `  operator token (ADMIN_TOKEN)            ${shown(c.adminToken, input.showSecrets)}`,
    `  tenant "${c.tenant}" key (scopes: admin)    ${shown(c.tenantKey, input.showSecrets)}`,
    "",
    "Try it:",
    `  ${keyFromFile}`,
    `  curl -s ${edgeUrl}/v1/chat/completions -H "authorization: Bearer $LORA_EDGE_KEY" -H 'content-type: application/json' -d '${body}'`,
    "",
    "  OpenAI SDK (the openai package is a dev dependency here; Node >= 22: npx node ...):",
    `  npx node --input-type=module -e '${sdk}'`,
    "",
    "  Publish your own PEFT adapter:",
    `  EDGE_URL=${edgeUrl} EDGE_TOKEN=$LORA_EDGE_KEY npm run publish-adapter -- ./my-adapter --name mine --base ${input.base} --alias prod`,
    "",
  ];
  return lines.join("\n");
}
