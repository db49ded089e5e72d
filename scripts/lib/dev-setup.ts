// The steps of `npm start` that talk to files and to the running edge: the demo model, local credentials,
// the operator's bootstrap (tenant, key, base model) and publishing adapters. Each step is idempotent, so a
// second start on the same data folder changes nothing that is already there.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { z } from "zod";
import { sha256File } from "../../gpu-runner/engine/model/peft-dir.ts";
import {
  PEFT_CONFIG_FILE as CONFIG_FILE,
  PEFT_WEIGHTS_FILE as WEIGHTS_FILE,
} from "../../src/adapters/peft-files.ts";
import { writeDemoAdapter } from "../demo-model/adapter.ts";
import { writeDemoModel } from "../demo-model/index.ts";
import { ROOT, runToEnd } from "./processes.ts";

const CredentialsSchema = z.strictObject({
  adminToken: z.string().min(16),
  runnerToken: z.string().min(16),
  tenant: z.string(),
  tenantKey: z.string().nullable(),
});
export type Credentials = z.infer<typeof CredentialsSchema>;

export const CREDENTIALS_FILE = "dev-credentials.json";
/** The edge's variables, secrets included, in wrangler's `.dev.vars` format (mode 600, rewritten each start). */
export const EDGE_VARS_FILE = "edge.dev.vars";

const secret = (prefix: string) => `${prefix}${randomBytes(24).toString("base64url")}`;

/** The local operator token and runner secret, made once per data folder and kept there (mode 600). */
export async function loadCredentials(
  dataDir: string,
): Promise<{ credentials: Credentials; created: boolean }> {
  const path = join(dataDir, CREDENTIALS_FILE);
  if (existsSync(path)) {
    const parsed = CredentialsSchema.safeParse(JSON.parse(await readFile(path, "utf8")));
    if (!parsed.success)
      throw new Error(`${path}: not what npm start wrote (${parsed.error.message}); delete it`);
    return { credentials: parsed.data, created: false };
  }
  const credentials: Credentials = {
    adminToken: secret("ops_"),
    runnerToken: secret("run_"),
    tenant: "demo",
    tenantKey: null,
  };
  await saveCredentials(dataDir, credentials);
  return { credentials, created: true };
}

export async function saveCredentials(dataDir: string, credentials: Credentials): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, CREDENTIALS_FILE);
  await writeFile(path, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}

/** Writes the seeded demo model and `adapters` demo adapters beside it, unless the model is there. */
export async function ensureDemoModel(modelDir: string, adapters: number): Promise<boolean> {
  if (existsSync(join(modelDir, "config.json"))) return false;
  await writeDemoModel({ out: modelDir, seed: 0 });
  for (let k = 0; k < adapters; k++) {
    // the seeds make-demo-model uses, so both tools write the same demo adapters
    await writeDemoAdapter(join(`${modelDir}-adapters`, `demo-${k}`), { seed: k + 1 });
  }
  return true;
}

export interface AdapterSource {
  /** The registry name it is published under. */
  name: string;
  /** A PEFT directory: adapter_config.json + adapter_model.safetensors. */
  dir: string;
}

/** Every PEFT directory directly under `root`, named after its folder; none when `root` is missing. */
export async function adapterSourcesIn(root: string): Promise<AdapterSource[]> {
  if (!existsSync(root)) return [];
  const entries = await readdir(root, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => ({ name: e.name, dir: join(root, e.name) }))
    .filter((s) => existsSync(join(s.dir, CONFIG_FILE)) && existsSync(join(s.dir, WEIGHTS_FILE)))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

export class EdgeAdmin {
  readonly #url: string;

  constructor(url: string) {
    this.#url = url;
  }

  async call(method: string, path: string, token: string, body?: unknown): Promise<Response> {
    return await fetch(`${this.#url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  async expect(res: Response, ok: number[], what: string): Promise<unknown> {
    const text = await res.text();
    if (!ok.includes(res.status))
      throw new Error(`${what}: the edge answered ${res.status}: ${text.slice(0, 500)}`);
    return text === "" ? null : JSON.parse(text);
  }

  /** Registers a model directory's config.json as a base model named after the directory. */
  async registerBase(adminToken: string, modelDir: string): Promise<string> {
    const id = basename(modelDir);
    const config = JSON.parse(await readFile(join(modelDir, "config.json"), "utf8"));
    await this.expect(
      await this.call("PUT", `/admin/base-models/${id}`, adminToken, config),
      [200, 201],
      "base model",
    );
    return id;
  }

  /** Creates the tenant (or finds it) and a key with scope admin; returns the key's secret. */
  async tenantKey(adminToken: string, tenant: string): Promise<string> {
    await this.expect(
      await this.call("POST", "/admin/tenants", adminToken, { name: tenant }),
      [201, 409],
      "tenant",
    );
    const created = (await this.expect(
      await this.call("POST", "/admin/keys", adminToken, { tenant, name: "npm-start", scopes: ["admin"] }),
      [201],
      "key",
    )) as { key: string };
    return created.key;
  }

  /** Whether a key still opens the edge (the data folder's D1 may have been wiped since it was made). */
  async keyWorks(key: string): Promise<boolean> {
    const res = await this.call("GET", "/v1/models", key);
    await res.body?.cancel();
    return res.ok;
  }

  /** Whether the tenant already has a version of `name` with these weights. */
  async hasVersion(key: string, name: string, weightsSha256: string): Promise<boolean> {
    const res = await this.call("GET", `/admin/adapters/${name}`, key);
    if (res.status === 404) return false;
    const body = (await this.expect(res, [200], `adapter ${name}`)) as {
      versions: { weightsSha256: string }[];
    };
    return body.versions.some((v) => v.weightsSha256 === weightsSha256);
  }
}

export interface Published {
  name: string;
  version: number | null;
  /** False when the same weights were published before (a second start). */
  fresh: boolean;
}

/** Publishes each source with the publish script, as a user would; skips weights already published. */
export async function publishSources(
  edgeUrl: string,
  key: string,
  base: string,
  sources: AdapterSource[],
  alias = "prod",
): Promise<Published[]> {
  const admin = new EdgeAdmin(edgeUrl);
  const out: Published[] = [];
  for (const source of sources) {
    const sha = await sha256File(join(source.dir, WEIGHTS_FILE));
    if (await admin.hasVersion(key, source.name, sha)) {
      out.push({ name: source.name, version: null, fresh: false });
      continue;
    }
    const args = ["scripts/publish-adapter.ts", source.dir, "--name", source.name, "--base", base];
    const printed = await runToEnd(
      `publish ${source.name}`,
      process.execPath,
      [...args, "--alias", alias, "--json"],
      {
        EDGE_URL: edgeUrl,
        EDGE_TOKEN: key,
      },
    );
    const json = printed.split("\n").find((l) => l.startsWith("{")) ?? "{}";
    out.push({
      name: source.name,
      version: (JSON.parse(json) as { version?: number }).version ?? null,
      fresh: true,
    });
  }
  return out;
}

export const DEFAULT_MODEL_DIR = join(ROOT, ".data/models/demo-llama");
