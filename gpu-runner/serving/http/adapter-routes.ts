// Adapter residency over HTTP: load by content id (edge), vLLM's load/unload by name + path (a name already
// taken by other content is refused with 400, as vLLM does), listing.
import type { Context, Hono } from "hono";
import { z } from "zod";
import {
  ADAPTER_CONFIG_HEADER,
  ADAPTER_NAME_HEADER,
  ADAPTER_PIN_HEADER,
  AdapterIdSchema,
  type AdapterLoadHeaders,
  AdapterLoadHeadersSchema,
  decodeAdapterConfigHeader,
  WEIGHTS_SHA256_HEADER,
} from "../../../src/contracts/runner.ts";
import { sha256Hex } from "../../../src/crypto.ts";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import type { AdapterCache } from "../adapters.ts";
import type { RunnerDeps } from "./deps.ts";
import { isBaseModel } from "./model-cards.ts";

// vLLM's request bodies (vllm/entrypoints/openai/protocol.py LoadLoRAAdapterRequest / UnloadLoRAAdapterRequest)
const LoadLoraSchema = z.looseObject({ lora_name: z.string().min(1), lora_path: z.string().min(1) });
const UnloadLoraSchema = z.looseObject({ lora_name: z.string().min(1) });

function decodeConfig(header: string): unknown {
  try {
    return decodeAdapterConfigHeader(header);
  } catch (error) {
    throw new AppError(
      "invalid_request",
      `${ADAPTER_CONFIG_HEADER}: must be base64url of adapter_config.json (${(error as Error).message})`,
      { param: ADAPTER_CONFIG_HEADER },
    );
  }
}

function tooLarge(maxBytes: number, setting: string, got: string): AppError {
  return new AppError(
    "payload_too_large",
    `body: adapter weights must be <= ${maxBytes} bytes (${setting}); got ${got}`,
  );
}

/** Reads the body, refusing it as soon as it is known to exceed `maxBytes` (by content-length, or while reading). */
async function readBounded(request: Request, maxBytes: number, setting: string): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) throw tooLarge(maxBytes, setting, `content-length ${declared}`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      size += chunk.byteLength;
      if (size > maxBytes) throw tooLarge(maxBytes, setting, `more than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

async function loadFromBody(
  c: Context,
  adapters: AdapterCache,
  id: string,
  headers: AdapterLoadHeaders,
  maxBytes: number,
  setting: string,
) {
  const config = decodeConfig(headers[ADAPTER_CONFIG_HEADER]);
  const weights = await readBounded(c.req.raw, maxBytes, setting);
  const actual = await sha256Hex(weights);
  if (actual !== headers[WEIGHTS_SHA256_HEADER]) {
    throw new AppError(
      "invalid_adapter",
      `${WEIGHTS_SHA256_HEADER}: the body's sha256 is ${actual}; the header says ${headers[WEIGHTS_SHA256_HEADER]} (corrupted or wrong upload)`,
      { param: WEIGHTS_SHA256_HEADER },
    );
  }
  return await adapters.load({
    config,
    weights,
    label: headers[ADAPTER_NAME_HEADER] ?? null,
    pinned: headers[ADAPTER_PIN_HEADER] === "1",
    expectedId: id,
    weightsSha256: actual,
  });
}

export function adapterRoutes(app: Hono, deps: RunnerDeps): void {
  const { adapters } = deps;
  // Loads under way by content id. Edge isolates share nothing, so several may PUT the same cold adapter at
  // once; the first load runs, the others wait for it and answer without reading their bodies.
  const loading = new Map<string, Promise<unknown>>();

  app.put("/v1/adapters/:adapterId", validate("header", AdapterLoadHeadersSchema), async (c) => {
    const id = c.req.param("adapterId");
    if (!AdapterIdSchema.safeParse(id).success) {
      throw new AppError("invalid_request", `adapterId: must be 64 lowercase hex characters; got "${id}"`, {
        param: "adapterId",
      });
    }
    const headers = c.req.valid("header");
    const handle = {
      label: headers[ADAPTER_NAME_HEADER] ?? null,
      pinned: headers[ADAPTER_PIN_HEADER] === "1",
    };
    const pending = loading.get(id);
    if (pending !== undefined) await pending.catch(() => undefined);
    const resident = adapters.reuse(id, handle);
    if (resident !== null) return c.json(resident, 200);
    const started = loadFromBody(c, adapters, id, headers, deps.maxAdapterBytes, deps.maxAdapterBytesSetting);
    loading.set(id, started);
    try {
      const result = await started;
      return c.json(result, result.loaded ? 201 : 200);
    } finally {
      loading.delete(id);
    }
  });

  app.get("/v1/adapters", (c) =>
    c.json({
      object: "list" as const,
      maxSlots: adapters.maxSlots,
      maxRank: deps.engine.maxRank,
      data: adapters.list(),
      host: adapters.host(),
    }),
  );

  app.delete("/v1/adapters/:adapterId", (c) =>
    c.json({ adapter: adapters.unload(c.req.param("adapterId")) }),
  );

  app.post("/v1/load_lora_adapter", validate("json", LoadLoraSchema), async (c) => {
    const { lora_name: name, lora_path: path } = c.req.valid("json");
    // requests for the base model's name never reach an adapter, so this name would serve nothing
    if (isBaseModel(deps, name)) {
      throw new AppError("invalid_request", `lora_name: "${name}" is the base model's name; choose another`, {
        param: "lora_name",
      });
    }
    const files = await deps.readAdapterDir(path, deps.maxAdapterBytes).catch((error: unknown) => {
      if (!(error instanceof AppError) || error.code !== "payload_too_large") throw error;
      throw new AppError(
        "payload_too_large",
        `lora_path: ${error.message} (${deps.maxAdapterBytesSetting})`,
        {
          param: "lora_path",
          cause: error,
        },
      );
    });
    // content already resident under another name gains this one as an alias of the same slot
    const result = await adapters.load({ ...files, name, source: path });
    return c.json(result, result.loaded ? 201 : 200);
  });

  app.post("/v1/unload_lora_adapter", validate("json", UnloadLoraSchema), (c) =>
    c.json({ adapter: adapters.unload(c.req.valid("json").lora_name) }),
  );
}
