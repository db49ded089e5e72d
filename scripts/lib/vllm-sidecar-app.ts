// The vLLM sidecar's HTTP app (README, "vLLM servers as members"): it speaks the runner API the edge uses
// (PUT /v1/adapters/{id}, /v1/adapters, OpenAI inference, /health, /ready, /metrics) and turns it into vLLM's: an
// adapter push becomes a PEFT folder under --dir plus `POST /v1/load_lora_adapter` with the content id as
// `lora_name`; eviction (beyond --max-loras, least recently used, never one in use) is
// `POST /v1/unload_lora_adapter`. vLLM's errors become ours. It reads nothing global: deps come in.
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Hono } from "hono";
import { bearerAuth, PROBE_PATHS } from "../../gpu-runner/serving/http/auth.ts";
import { createMetrics } from "../../gpu-runner/serving/metrics.ts";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import {
  ADAPTER_CONFIG_HEADER,
  ADAPTER_NAME_HEADER,
  AdapterIdSchema,
  AdapterLoadHeadersSchema,
  decodeAdapterConfigHeader,
  type ResidentAdapter,
  type RunnerHealth,
  type RunnerReady,
  WEIGHTS_SHA256_HEADER,
} from "../../src/contracts/runner.ts";
import { sha256Hex } from "../../src/crypto.ts";
import { AppError, type ErrorCode, errorEnvelope } from "../../src/errors.ts";
import { toAppError } from "../../src/http/errors.ts";
import { validate } from "../../src/http/validate.ts";
import { parseHeader, readHeaderLength } from "../../src/safetensors.ts";

export interface SidecarDeps {
  /** vLLM's base URL, e.g. http://127.0.0.1:8000. */
  vllmUrl: string;
  /** VLLM_API_KEY of that server, or null. */
  vllmKey: string | null;
  /** Where PEFT folders are written; vLLM must read the same paths. */
  dir: string;
  /** The base model vLLM serves (its /v1/models id). */
  baseModel: string;
  /** Adapters kept loaded in vLLM at once (at most its --max-cpu-loras). */
  maxLoras: number;
  /** vLLM's --max-lora-rank: wider adapters are refused before vLLM sees them. */
  maxLoraRank: number;
  /** The secret the edge sends (RUNNER_TOKEN); null: none. */
  runnerToken: string | null;
  version: string;
  /** The drain gate in front of the app (gpu-runner/serving/fleet.ts): /ready fails while it drains. */
  drain?: { readonly draining: boolean };
  fetch?: typeof fetch;
  now?: () => number;
}

interface Loaded {
  adapterId: string;
  label: string | null;
  rank: number;
  modules: number;
  sizeBytes: number;
  loadedAt: number;
  lastUsedAt: number;
  inFlight: number;
  /** Slot-like position for listings: 1..maxLoras. */
  slot: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** How long /ready waits for vLLM's /health: a probe must answer within the orchestrator's probe timeout. */
export const VLLM_HEALTH_TIMEOUT_MS = 2_000;

/** vLLM's error body is `{object:"error", message, ...}` (older) or OpenAI's `{error:{message}}`. */
function vllmMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } };
    const message = body.error?.message ?? body.message;
    if (typeof message === "string") return message;
  } catch {
    // not JSON
  }
  return text.slice(0, 300);
}

function codeFor(status: number): ErrorCode {
  if (status === 400 || status === 422) return "invalid_request";
  if (status === 401 || status === 403) return "upstream_error";
  if (status === 404) return "model_not_found";
  if (status === 429) return "queue_full";
  if (status === 503) return "unavailable";
  return "upstream_error";
}

function rankOf(config: Record<string, unknown>): number {
  const ranks = [Number(config.r ?? 8)];
  const pattern = config.rank_pattern;
  if (pattern !== null && typeof pattern === "object")
    for (const v of Object.values(pattern)) ranks.push(Number(v));
  return Math.max(...ranks);
}

export function createSidecar(deps: SidecarDeps) {
  const send = deps.fetch ?? ((input, init) => fetch(input, init));
  const now = deps.now ?? Date.now;
  const loaded = new Map<string, Loaded>();
  const loading = new Map<string, Promise<Loaded>>();
  const metrics = createMetrics();
  metrics.addGauge("runner_resident_adapters", "Adapters loaded in vLLM", () => loaded.size);
  const startedAt = now();

  async function vllm(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    try {
      return await send(`${deps.vllmUrl}${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(deps.vllmKey === null ? {} : { authorization: `Bearer ${deps.vllmKey}` }),
        },
        body: JSON.stringify(body),
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      if (signal?.aborted) throw new AppError("invalid_request", "the client closed the request");
      throw new AppError(
        "unavailable",
        `vLLM at --vllm did not answer ${path} (${(error as Error).message})`,
      );
    }
  }

  async function unload(entry: Loaded): Promise<void> {
    loaded.delete(entry.adapterId);
    const res = await vllm("/v1/unload_lora_adapter", { lora_name: entry.adapterId });
    const text = await res.text();
    // 404: vLLM no longer had it (it restarted); the folder still goes.
    if (!res.ok && res.status !== 404) {
      console.error(
        `vllm-sidecar: unload of ${entry.adapterId} answered ${res.status}: ${vllmMessage(text)}`,
      );
    }
    metrics.adapterEvictions.inc();
    await rm(join(deps.dir, entry.adapterId), { recursive: true, force: true });
  }

  /** Frees one place: the least recently used adapter with nothing in flight. */
  async function makeRoom(): Promise<void> {
    while (loaded.size >= deps.maxLoras) {
      const idle = [...loaded.values()]
        .filter((e) => e.inFlight === 0)
        .sort((a, b) => a.lastUsedAt - b.lastUsedAt);
      const victim = idle[0];
      if (victim === undefined) {
        throw new AppError(
          "queue_full",
          `every one of --max-loras ${deps.maxLoras} adapters has requests running; try again shortly`,
        );
      }
      await unload(victim);
    }
  }

  function freeSlot(): number {
    const used = new Set([...loaded.values()].map((e) => e.slot));
    for (let s = 1; ; s++) if (!used.has(s)) return s;
  }

  async function load(
    id: string,
    config: Record<string, unknown>,
    weights: Uint8Array,
    label: string | null,
  ) {
    const started = now();
    const rank = rankOf(config);
    if (rank > deps.maxLoraRank) {
      throw new AppError(
        "invalid_adapter",
        `adapter_config.json r: must be <= vLLM's --max-lora-rank ${deps.maxLoraRank}; got ${rank}`,
        { param: "r" },
      );
    }
    const header = parseHeader(weights.subarray(0, 8 + readHeaderLength(weights)), weights.length);
    await makeRoom();
    // Written under a temporary name and renamed, so vLLM never reads half a folder.
    const final = join(deps.dir, id);
    const staging = `${final}.part-${started}`;
    await mkdir(staging, { recursive: true });
    await writeFile(join(staging, PEFT_CONFIG_FILE), JSON.stringify(config));
    await writeFile(join(staging, PEFT_WEIGHTS_FILE), weights);
    await rm(final, { recursive: true, force: true });
    await rename(staging, final);
    const res = await vllm("/v1/load_lora_adapter", { lora_name: id, lora_path: final });
    const text = await res.text();
    if (!res.ok) {
      await rm(final, { recursive: true, force: true });
      if (res.status === 404) {
        throw new AppError(
          "upstream_error",
          "vLLM has no /v1/load_lora_adapter: start it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora",
        );
      }
      const code: ErrorCode = res.status === 400 ? "invalid_adapter" : codeFor(res.status);
      throw new AppError(
        code,
        `vLLM refused to load adapter ${label ?? id} (${res.status}): ${vllmMessage(text)}`,
      );
    }
    const entry: Loaded = {
      adapterId: id,
      label,
      rank,
      modules: Math.max(1, Math.floor(header.tensors.length / 2)),
      sizeBytes: weights.length,
      loadedAt: now(),
      lastUsedAt: now(),
      inFlight: 0,
      slot: freeSlot(),
    };
    loaded.set(id, entry);
    metrics.adapterLoads.inc();
    return { entry, loadMs: now() - started };
  }

  const view = (e: Loaded): ResidentAdapter => ({
    adapterId: e.adapterId,
    name: e.label,
    names: [e.adapterId],
    slot: e.slot,
    rank: e.rank,
    modules: e.modules,
    sizeBytes: e.sizeBytes,
    pinned: false,
    loadedAt: iso(e.loadedAt),
    lastUsedAt: iso(e.lastUsedAt),
    inFlight: e.inFlight,
  });

  async function infer(path: string, request: Request): Promise<Response> {
    const body = (await request.json().catch(() => null)) as Record<string, unknown> | null;
    if (body === null || typeof body.model !== "string") {
      throw new AppError("invalid_request", "body.model: must be a string; got none", { param: "model" });
    }
    const model = body.model;
    let entry: Loaded | undefined;
    if (model !== deps.baseModel) {
      entry = loaded.get(model);
      if (entry === undefined) {
        if (AdapterIdSchema.safeParse(model).success) {
          throw new AppError(
            "adapter_not_loaded",
            `adapter ${model} is not loaded; PUT /v1/adapters/${model} first`,
            {
              param: "model",
            },
          );
        }
        throw new AppError("model_not_found", `model: ${JSON.stringify(model)} is not served here`, {
          param: "model",
        });
      }
    }
    if (entry !== undefined) {
      entry.inFlight++;
      entry.lastUsedAt = now();
    }
    const release = () => {
      if (entry !== undefined) entry.inFlight = Math.max(0, entry.inFlight - 1);
    };
    let res: Response;
    try {
      res = await vllm(path, body, request.signal);
    } catch (error) {
      release();
      throw error;
    }
    metrics.requests.inc({ adapter_id: entry?.adapterId ?? "base" });
    if (!res.ok) {
      release();
      const text = await res.text();
      // vLLM lost the adapter (it restarted): forget it, so the edge pushes it again.
      if (res.status === 404 && entry !== undefined) {
        loaded.delete(entry.adapterId);
        throw new AppError("adapter_not_loaded", `adapter ${model} is no longer loaded in vLLM`, {
          param: "model",
        });
      }
      throw new AppError(codeFor(res.status), `vLLM answered ${res.status}: ${vllmMessage(text)}`);
    }
    if (res.body === null) {
      release();
      return new Response(null, { status: res.status, headers: res.headers });
    }
    const reader = res.body.getReader();
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const chunk = await reader.read();
          if (chunk.done) {
            release();
            controller.close();
          } else controller.enqueue(chunk.value);
        } catch (error) {
          release();
          controller.error(error);
        }
      },
      async cancel(reason) {
        release();
        await reader.cancel(reason);
      },
    });
    const headers = new Headers();
    for (const name of ["content-type", "cache-control"]) {
      const value = res.headers.get(name);
      if (value !== null) headers.set(name, value);
    }
    return new Response(stream, { status: res.status, headers });
  }

  const app = new Hono();
  app.use(bearerAuth(deps.runnerToken, PROBE_PATHS));
  app.get("/health", (c) => {
    const health: RunnerHealth = {
      status: "ok",
      model: deps.baseModel,
      baseModelFingerprint: null,
      device: "vllm",
      backend: "vllm",
      maxSlots: deps.maxLoras,
      maxRank: deps.maxLoraRank,
      residentAdapters: loaded.size,
      mode: "text",
      queueDepth: 0,
      uptimeS: (now() - startedAt) / 1000,
      version: deps.version,
    };
    return c.json(health);
  });
  // Readiness, as the runner's (gpu-runner/serving/http/ops-routes.ts): 503 from the first moment of a drain,
  // and while vLLM itself does not answer its /health, since then every forwarded request would fail; /health
  // above stays the sidecar's liveness, so an orchestrator waits for vLLM instead of restarting the sidecar.
  app.get("/ready", async (c) => {
    const unready = (message: string) =>
      c.json(errorEnvelope(new AppError("unavailable", message)), 503, { "retry-after": "1" });
    if (deps.drain?.draining === true)
      return unready(
        "this sidecar is draining: it takes no new requests and exits once the running ones finish",
      );
    let res: Response;
    try {
      res = await send(`${deps.vllmUrl}/health`, {
        headers: deps.vllmKey === null ? {} : { authorization: `Bearer ${deps.vllmKey}` },
        signal: AbortSignal.timeout(VLLM_HEALTH_TIMEOUT_MS),
      });
      await res.body?.cancel();
    } catch (error) {
      return unready(`vLLM at --vllm did not answer /health (${(error as Error).message})`);
    }
    if (!res.ok) return unready(`vLLM at --vllm answered /health with ${res.status}`);
    const ready: RunnerReady = { status: "ready", model: deps.baseModel };
    return c.json(ready);
  });
  app.get("/metrics", (c) =>
    c.text(metrics.render(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
  );
  app.get("/v1/adapters", (c) =>
    c.json({
      object: "list" as const,
      maxSlots: deps.maxLoras,
      maxRank: deps.maxLoraRank,
      data: [...loaded.values()].map(view),
    }),
  );
  app.put("/v1/adapters/:adapterId", validate("header", AdapterLoadHeadersSchema), async (c) => {
    const id = c.req.param("adapterId");
    if (!AdapterIdSchema.safeParse(id).success) {
      throw new AppError("invalid_request", `adapterId: must be 64 lowercase hex characters; got "${id}"`, {
        param: "adapterId",
      });
    }
    const pending = loading.get(id);
    if (pending !== undefined) await pending.catch(() => undefined);
    const resident = loaded.get(id);
    if (resident !== undefined) return c.json({ adapter: view(resident), loaded: false, loadMs: 0 }, 200);
    const headers = c.req.valid("header");
    let config: Record<string, unknown>;
    try {
      config = decodeAdapterConfigHeader(headers[ADAPTER_CONFIG_HEADER]) as Record<string, unknown>;
    } catch (error) {
      throw new AppError(
        "invalid_request",
        `${ADAPTER_CONFIG_HEADER}: must be base64url JSON (${(error as Error).message})`,
        {
          param: ADAPTER_CONFIG_HEADER,
        },
      );
    }
    const weights = new Uint8Array(await c.req.arrayBuffer());
    const actual = await sha256Hex(weights);
    if (actual !== headers[WEIGHTS_SHA256_HEADER]) {
      throw new AppError(
        "invalid_adapter",
        `${WEIGHTS_SHA256_HEADER}: the body's sha256 is ${actual}; the header says ${headers[WEIGHTS_SHA256_HEADER]}`,
        { param: WEIGHTS_SHA256_HEADER },
      );
    }
    const started = load(id, config, weights, headers[ADAPTER_NAME_HEADER] ?? null);
    loading.set(
      id,
      started.then((r) => r.entry),
    );
    try {
      const { entry, loadMs } = await started;
      return c.json({ adapter: view(entry), loaded: true, loadMs }, 201);
    } finally {
      loading.delete(id);
    }
  });
  app.delete("/v1/adapters/:adapterId", async (c) => {
    const entry = loaded.get(c.req.param("adapterId"));
    if (entry === undefined)
      throw new AppError("not_found", `adapter ${c.req.param("adapterId")} is not loaded`);
    await unload(entry);
    return c.json({ adapter: view(entry) });
  });
  app.post("/v1/chat/completions", (c) => infer("/v1/chat/completions", c.req.raw));
  app.post("/v1/completions", (c) => infer("/v1/completions", c.req.raw));
  app.notFound((c) => {
    const error = new AppError("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`);
    return c.json(errorEnvelope(error), 404);
  });
  app.onError((error, c) => {
    const appError = toAppError(error);
    if (appError.status >= 500) console.error("vllm-sidecar:", error);
    return c.json(errorEnvelope(appError), appError.status as 400);
  });
  return {
    app,
    /** What heartbeats report: adapters loaded and requests each served. */
    resident: () =>
      [...loaded.values()].map((e) => ({
        adapterId: e.adapterId,
        requests: metrics.requests.get({ adapter_id: e.adapterId }),
      })),
    inFlight: () => [...loaded.values()].reduce((sum, e) => sum + e.inFlight, 0),
  };
}
