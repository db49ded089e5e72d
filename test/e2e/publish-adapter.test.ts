// The publishing script end to end, as a user runs it: the edge as `npm start` runs it (wrangler's dev server
// with local D1 and R2, secrets from a mode-600 file), the script as a child process, and a stand-in runner
// (a plain HTTP server) that records what the edge forwards.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyMigrations, type EdgeProcess, freePort, startEdge } from "../../scripts/lib/processes.ts";
import { type BaseModelSpec, baseModelSpecFromConfig } from "../../src/contracts/base-model.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { demoSpecConfig, type MakePeftAdapterOptions, makePeftAdapter } from "../helpers/peft-files.ts";

const ROOT = join(import.meta.dirname, "../..");
const NODE = join(ROOT, "node_modules/.bin/node");
const ADMIN = "e2e-admin-token";
/** Lower than the script's local default (64), so the edge, not the script, refuses rank 48. */
const EDGE_MAX_RANK = 32;
const WIDE = {
  ...demoSpecConfig(),
  hidden_size: 1024,
  intermediate_size: 2048,
  num_hidden_layers: 6,
  num_attention_heads: 16,
  num_key_value_heads: 4,
  head_dim: 64,
};

let work: string;
let edgeUrl: string;
let edgeProcess: EdgeProcess | undefined;
let runner: Server;
const forwarded: { url: string; auth: string | undefined; body: { model?: string } }[] = [];
let tenantKey: string;
let spec: BaseModelSpec;

function exec(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function readBody(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text;
}

async function edge(method: string, path: string, token: string, body?: unknown): Promise<Response> {
  return await fetch(`${edgeUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function adapterDir(
  name: string,
  options: Partial<MakePeftAdapterOptions> & { spec?: BaseModelSpec } = {},
) {
  const files = makePeftAdapter({ spec, ...options });
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify(files.config, null, 2));
  await writeFile(join(dir, "adapter_model.safetensors"), files.safetensors);
  return { dir, files };
}

function publishScript(args: string[]) {
  return exec(NODE, ["scripts/publish-adapter.ts", ...args], { EDGE_URL: edgeUrl, EDGE_TOKEN: tenantKey });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "lora-edge-e2e-"));
  runner = createServer(async (req, res) => {
    // Only inference is recorded; the edge's background calls (health, residency, warm pushes) get a 404.
    if (req.method !== "POST") {
      await readBody(req);
      res.statusCode = 404;
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          error: { message: "not here", type: "invalid_request_error", param: null, code: "not_found" },
        }),
      );
      return;
    }
    forwarded.push({
      url: req.url ?? "",
      auth: req.headers.authorization,
      body: JSON.parse(await readBody(req)),
    });
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ id: "x", object: "chat.completion", created: 1, model: "x", choices: [] }));
  });
  await new Promise<void>((resolve) => runner.listen(0, "127.0.0.1", resolve));
  const runnerUrl = `http://127.0.0.1:${(runner.address() as AddressInfo).port}`;

  const persist = join(work, "state");
  await applyMigrations(persist);
  // As `npm start` runs it: the Worker's secrets in a mode-600 vars file, never on an argv (edge-dev.ts).
  edgeProcess = await startEdge({
    persistTo: persist,
    port: await freePort(),
    adminToken: ADMIN,
    runnerToken: "e2e-runner-token",
    runners: [{ url: runnerUrl }],
    vars: { MAX_LORA_RANK: String(EDGE_MAX_RANK) },
  });
  edgeUrl = edgeProcess.url;

  spec = await baseModelSpecFromConfig("demo-llama", demoSpecConfig());
  expect((await edge("PUT", "/admin/base-models/demo-llama", ADMIN, demoSpecConfig())).status).toBe(201);
  expect((await edge("PUT", "/admin/base-models/wide-llama", ADMIN, WIDE)).status).toBe(201);
  expect((await edge("POST", "/admin/tenants", ADMIN, { name: "acme" })).status).toBe(201);
  const key = await edge("POST", "/admin/keys", ADMIN, {
    tenant: "acme",
    name: "ci",
    scopes: ["publish", "infer"],
  });
  tenantKey = ((await key.json()) as { key: string }).key;
});

afterAll(async () => {
  await edgeProcess?.stop();
  await new Promise<void>((resolve) => (runner ? runner.close(() => resolve()) : resolve()));
  if (work) await rm(work, { recursive: true, force: true });
});

describe("npm run publish-adapter against wrangler dev", () => {
  it("publishes, prints version, digest and aliases, and the edge then serves name@alias", async () => {
    const { dir, files } = await adapterDir("support", { r: 4, alpha: 8 });
    const run = await publishScript([dir, "--name", "support", "--base", "demo-llama", "--alias", "prod"]);
    expect(run.stderr).not.toContain("error");
    expect(run.code).toBe(0);
    const digest = await sha256Hex(files.safetensors);
    expect(run.stdout).toContain("published support@1");
    expect(run.stdout).toContain(`sha256:${digest}`);
    expect(run.stdout).toContain("support@prod -> 1");

    const shown = (await (await edge("GET", "/admin/adapters/support", tenantKey)).json()) as {
      aliases: Record<string, number>;
      versions: { weightsSha256: string; adapterId: string }[];
    };
    expect(shown.aliases).toEqual({ prod: 1 });
    expect(shown.versions[0]?.weightsSha256).toBe(digest);

    const res = await edge("POST", "/v1/chat/completions", tenantKey, {
      model: "support@prod",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-adapter")).toBe("support@1");
    expect(forwarded.at(-1)?.body.model).toBe(shown.versions[0]?.adapterId);
    expect(forwarded.at(-1)?.auth).toBe("Bearer e2e-runner-token");
  });

  it("uploads a file above the threshold in parts", async () => {
    const wide = await baseModelSpecFromConfig("wide-llama", WIDE);
    // ~12 MiB at r=32 (all-linear, 6 layers): three parts of R2's smallest size, 5 MiB.
    const { dir, files } = await adapterDir("wide", { spec: wide, targets: "all-linear", r: 32, seed: 3 });
    const run = await publishScript([
      dir,
      "--name",
      "wide",
      "--base",
      "wide-llama",
      "--multipart-mib",
      "1",
      "--part-mib",
      "5",
      "--json",
    ]);
    expect(run.code, run.stderr).toBe(0);
    const published = JSON.parse(run.stdout) as { version: number; weightsSha256: string };
    expect(published.version).toBe(1);
    expect(published.weightsSha256).toBe(await sha256Hex(files.safetensors));
  });

  it("validates locally with --dry-run and uploads nothing", async () => {
    const { dir } = await adapterDir("dry", { r: 2 });
    const run = await publishScript([dir, "--name", "dry", "--base", "demo-llama", "--dry-run"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("dry run");
    expect((await edge("GET", "/admin/adapters/dry", tenantKey)).status).toBe(404);
  });

  it("takes the name, and the version it must become, from the folder's name <name>@<N>", async () => {
    const first = await adapterDir("versioned@1", { r: 2, seed: 5 });
    const run = await publishScript([first.dir, "--base", "demo-llama", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ name: "versioned", version: 1 });
    // the edge's next version is 2 now: a folder claiming 1 again is refused before anything is uploaded
    const again = await adapterDir("again/versioned@1", { r: 2, seed: 6 });
    const refused = await publishScript([again.dir, "--base", "demo-llama", "--json"]);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({
      error: {
        code: "conflict",
        param: "name",
        message: expect.stringContaining("next version of versioned is 2, not 1"),
      },
    });
    const shown = (await (await edge("GET", "/admin/adapters/versioned", tenantKey)).json()) as {
      versions: unknown[];
    };
    expect(shown.versions).toHaveLength(1);
    const second = await adapterDir("versioned@2", { r: 2, seed: 7 });
    const next = await publishScript([second.dir, "--base", "demo-llama"]);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toContain("published versioned@2");
  });

  it("exits non-zero with the edge's message when the edge refuses", async () => {
    const { dir } = await adapterDir("wide-rank", { r: 48, targets: ["q_proj"] });
    const run = await publishScript([dir, "--name", "wide-rank", "--base", "demo-llama"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`rank 48 must be <= ${EDGE_MAX_RANK}`);
    expect((await edge("GET", "/admin/adapters/wide-rank", tenantKey)).status).toBe(404);
  });

  it("refuses locally, before uploading, what the shared validation refuses", async () => {
    const { dir } = await adapterDir("dora", { config: { use_dora: true } });
    const run = await publishScript([dir, "--name", "dora", "--base", "demo-llama"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("use_dora");
    await rm(join(dir, "adapter_model.safetensors"));
    await writeFile(join(dir, "adapter_model.bin"), new Uint8Array([0x80, 0x02]));
    const pickle = await publishScript([dir, "--name", "dora", "--base", "demo-llama"]);
    expect(pickle.code).toBe(1);
    expect(pickle.stderr).toContain("pickle");
  });
});
