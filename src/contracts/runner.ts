// The edge → runner API beyond the OpenAI endpoints: adapter residency and health.
// `PUT /v1/adapters/{adapterId}`: body = adapter_model.safetensors bytes; the PEFT config and the weights'
// sha256 travel in headers, so the body can stream straight from R2 without a multipart wrapper.
import { z } from "zod";
import { Sha256Schema } from "./digest.ts";

const sha256 = Sha256Schema;

export const ADAPTER_CONFIG_HEADER = "x-adapter-config";
export const WEIGHTS_SHA256_HEADER = "x-weights-sha256";
export const ADAPTER_NAME_HEADER = "x-adapter-name";
export const ADAPTER_PIN_HEADER = "x-adapter-pin";
/**
 * The tenant a request is for, set by the edge on every inference request it forwards; the runner schedules
 * fairly across tenants by it, and honours it only from a caller that holds the runner's API key.
 */
export const TENANT_HEADER = "x-lora-edge-tenant";

export const AdapterIdSchema = sha256;

/** Headers of the adapter load request (lowercase names, as Headers yields them). */
export const AdapterLoadHeadersSchema = z.looseObject({
  [ADAPTER_CONFIG_HEADER]: z.string().min(1, "must carry adapter_config.json as base64url JSON"),
  [WEIGHTS_SHA256_HEADER]: sha256,
  /** `name@version`, for logs and listings only: identity is the adapterId. */
  [ADAPTER_NAME_HEADER]: z.string().optional(),
  [ADAPTER_PIN_HEADER]: z.enum(["0", "1"]).optional(),
});
export type AdapterLoadHeaders = z.infer<typeof AdapterLoadHeadersSchema>;

function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url (A-Z a-z 0-9 - _, no padding)");
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** Encodes a PEFT config for the `x-adapter-config` header. */
export function encodeAdapterConfigHeader(config: unknown): string {
  return toBase64Url(new TextEncoder().encode(JSON.stringify(config)));
}

/** Decodes the `x-adapter-config` header; throws an Error saying what is wrong (the caller wraps it). */
export function decodeAdapterConfigHeader(value: string): unknown {
  const bytes = fromBase64Url(value);
  return JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
}

/** Response to a load, and one entry of the resident listing. */
export const ResidentAdapterSchema = z.strictObject({
  adapterId: AdapterIdSchema,
  /** The first name requests may use as `model` (vLLM's lora_name), else the edge's label; display only. */
  name: z.string().nullable(),
  /**
   * Every name requests may use as `model`: loading the same content under another name adds one, unloading
   * a name drops it. Optional so that an edge reads runners from before names were listed.
   */
  names: z.array(z.string()).optional(),
  slot: z.number().int().min(1),
  rank: z.number().int().positive(),
  modules: z.number().int().positive(),
  sizeBytes: z.number().int().nonnegative(),
  pinned: z.boolean(),
  loadedAt: z.iso.datetime({ offset: true }),
  lastUsedAt: z.iso.datetime({ offset: true }),
  /** Requests running with this adapter now; a resident adapter in use is never evicted. */
  inFlight: z.number().int().nonnegative(),
  /** Bytes its decoded weights hold in the runner's host memory. Optional: runners before the host tier. */
  hostBytes: z.number().int().nonnegative().optional(),
});
export type ResidentAdapter = z.infer<typeof ResidentAdapterSchema>;

/**
 * An adapter in the runner's host-memory tier (every loaded adapter is): decoded and validated, copied into a
 * slot when a request needs it, without the edge. `inFlight` counts queued and running requests.
 */
export const HostAdapterSchema = ResidentAdapterSchema.extend({
  /** The GPU slot holding it too, or null when it is in host memory only. */
  slot: z.number().int().min(1).nullable(),
  hostBytes: z.number().int().nonnegative(),
});
export type HostAdapter = z.infer<typeof HostAdapterSchema>;

/** The host tier's bounds (--max-cpu-loras, --adapter-cache-bytes) and contents. */
export const HostTierSchema = z.strictObject({
  /** null: bounded by bytes only. */
  maxAdapters: z.number().int().positive().nullable(),
  budgetBytes: z.number().int().positive(),
  usedBytes: z.number().int().nonnegative(),
  data: z.array(HostAdapterSchema),
});
export type HostTier = z.infer<typeof HostTierSchema>;

export const AdapterLoadResponseSchema = z.strictObject({
  /** `slot` is null while the adapter is in host memory only (every slot had running rows). */
  adapter: HostAdapterSchema,
  /** False when the adapter was already resident (the load was a no-op). */
  loaded: z.boolean(),
  loadMs: z.number().nonnegative(),
});
export type AdapterLoadResponse = z.infer<typeof AdapterLoadResponseSchema>;

export const ResidentAdapterListSchema = z.strictObject({
  object: z.literal("list"),
  maxSlots: z.number().int().nonnegative(),
  maxRank: z.number().int().positive(),
  /** The GPU tier: adapters in slots. */
  data: z.array(ResidentAdapterSchema),
  /** The host tier behind the slots, a superset of `data`; absent from runners before it. */
  host: HostTierSchema.optional(),
});
export type ResidentAdapterList = z.infer<typeof ResidentAdapterListSchema>;

export const RunnerHealthSchema = z.strictObject({
  status: z.enum(["ok", "loading", "degraded"]),
  model: z.string(),
  baseModelFingerprint: z.string().nullable(),
  /** "vllm": a vLLM server behind `npm run vllm-sidecar` (its device is vLLM's to know). */
  device: z.enum(["cpu", "webgpu", "vllm"]),
  backend: z.enum(["native", "wasm", "vllm"]),
  maxSlots: z.number().int().nonnegative(),
  maxRank: z.number().int().positive(),
  residentAdapters: z.number().int().nonnegative(),
  /** Adapters in the host-memory tier (those in slots included); absent from runners before it. */
  hostAdapters: z.number().int().nonnegative().optional(),
  /** "token_ids": the model has no tokenizer.json; only token-id prompts to /v1/completions are served. */
  mode: z.enum(["text", "token_ids"]),
  queueDepth: z.number().int().nonnegative(),
  uptimeS: z.number().nonnegative(),
  version: z.string(),
});
export type RunnerHealth = z.infer<typeof RunnerHealthSchema>;

/**
 * GET /ready, the readiness probe: 200 with this body while the runner takes new requests; 503 in the error
 * envelope (code `unavailable`) while it drains. /health stays vLLM's liveness probe and answers 200 meanwhile.
 */
export const RunnerReadySchema = z.strictObject({ status: z.literal("ready"), model: z.string() });
export type RunnerReady = z.infer<typeof RunnerReadySchema>;
