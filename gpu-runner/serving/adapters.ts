// Adapter residency: which adapter sits in which engine slot. Slots 1..maxSlots; a slot whose adapter is
// used by a queued or running request is never overwritten; when all are taken, the least recently used
// adapter that is neither pinned nor in use is evicted. Identity is the content id (adapterId); names are
// extra handles for vLLM-style `lora_name` and static `--lora name=dir` adapters, several per slot when the
// same content is loaded under several names (one copy of the weights; unloading one name keeps the others).
// The edge's label (`name@version`) is shown only: two tenants may both have a "support@3", so it must never
// resolve.
import { AdapterIdSchema, type ResidentAdapter } from "../../src/contracts/runner.ts";
import { AppError } from "../../src/errors.ts";
import type { AdapterWeights, Engine } from "../engine/types.ts";
import type { RunnerMetrics } from "./metrics.ts";

/** A validated adapter, ready for a slot. */
export interface PreparedAdapter {
  adapterId: string;
  weights: AdapterWeights;
  /** Widest rank over its modules. */
  rank: number;
  sizeBytes: number;
}

/** Validates config + weights against the base model and resolves them into engine weights. */
export type PrepareAdapter = (input: {
  config: unknown;
  weights: Uint8Array;
  label: string;
  /** The weights' sha256 when the caller has already computed it (the PUT route verifies it). */
  weightsSha256?: string;
}) => Promise<PreparedAdapter>;

export interface LoadInput {
  config: unknown;
  weights: Uint8Array;
  /** A handle requests may use as `model` (vLLM's lora_name, --lora); unique among resident adapters. */
  name?: string | null;
  /** Where the files were read from (vLLM's lora_path): the name's `root` in /v1/models. */
  source?: string | null;
  /** Shown in listings and metrics only (the edge's `name@version`). */
  label?: string | null;
  pinned?: boolean;
  /** The content id the caller addressed; a mismatch means caller and runner disagree on the content. */
  expectedId?: string;
  /** The weights' sha256, already verified by the caller; saves hashing the body twice. */
  weightsSha256?: string;
}

export interface LoadResult {
  adapter: ResidentAdapter;
  loaded: boolean;
  loadMs: number;
}

export interface Lease {
  slot: number;
  /**
   * What metrics count by: the content id, or "base" for the base model. Never a name or label: labels repeat
   * across tenants and names are reused after an unload, so neither can tell two adapters' traffic apart.
   */
  adapterId: string;
  release(): void;
}

/**
 * Display labels of a resident adapter for `runner_adapter_info`; "" where it has none (Prometheus: absent).
 * A type, not an interface, so that it is assignable to a metrics label record.
 */
export type AdapterInfo = { adapter_id: string; name: string; label: string };

/** A name requests may use as `model`, and where its files came from. */
interface Handle {
  name: string;
  source: string | null;
}

/** One model requests may name, as /v1/models lists it. */
export interface ServedAdapter {
  id: string;
  adapterId: string;
  /** vLLM's `root`: the directory the name was loaded from, or the content id for uploaded bytes. */
  root: string;
  loadedAt: number;
}

/**
 * The refusal for a `model` that names nothing here. A content id gets 409 adapter_not_loaded: the edge
 * addresses adapters by content id and answers that code by uploading the weights (docs/architecture.md,
 * "Cold adapters"). Anything else is a name this runner does not serve: 404 model_not_found, which OpenAI's
 * SDKs raise as NotFoundError.
 */
export function notServed(model: string): AppError {
  if (AdapterIdSchema.safeParse(model).success) {
    return new AppError(
      "adapter_not_loaded",
      `adapter "${model}" is not loaded on this runner; load it and retry`,
      { param: "model" },
    );
  }
  return unknownModel(model);
}

/** 404 model_not_found for a name that is neither the base model nor a loaded adapter. */
export function unknownModel(model: string): AppError {
  return new AppError(
    "model_not_found",
    `model "${model}" does not exist on this runner: it is neither the base model nor a loaded adapter; GET /v1/models lists what it serves`,
    { param: "model" },
  );
}

interface Entry {
  adapterId: string;
  /** In the order they were added; the first is the display name. */
  handles: Handle[];
  label: string | null;
  slot: number;
  rank: number;
  modules: number;
  sizeBytes: number;
  pinned: boolean;
  loadedAt: number;
  lastUsedAt: number;
  inFlight: number;
}

export interface AdapterCacheOptions {
  engine: Pick<Engine, "setSlot" | "maxSlots" | "maxRank">;
  prepare: PrepareAdapter;
  metrics?: RunnerMetrics;
  now?: () => number;
}

export class AdapterCache {
  private readonly engine: AdapterCacheOptions["engine"];
  private readonly prepare: PrepareAdapter;
  private readonly metrics: RunnerMetrics | undefined;
  private readonly now: () => number;
  private readonly bySlot = new Map<number, Entry>();

  constructor(options: AdapterCacheOptions) {
    this.engine = options.engine;
    this.prepare = options.prepare;
    this.metrics = options.metrics;
    this.now = options.now ?? Date.now;
  }

  get maxSlots(): number {
    return this.engine.maxSlots;
  }

  list(): ResidentAdapter[] {
    return [...this.bySlot.values()].sort((a, b) => a.slot - b.slot).map((e) => this.view(e));
  }

  info(): AdapterInfo[] {
    return [...this.bySlot.values()]
      .sort((a, b) => a.slot - b.slot)
      .map((e) => ({ adapter_id: e.adapterId, name: this.names(e).join(","), label: e.label ?? "" }));
  }

  /** What requests may name as `model`: each handle name, or the content id of an adapter without one. */
  servedModels(): ServedAdapter[] {
    return [...this.bySlot.values()]
      .sort((a, b) => a.slot - b.slot)
      .flatMap((e) =>
        e.handles.length === 0
          ? [this.served(e, e.adapterId, null)]
          : e.handles.map((h) => this.served(e, h.name, h.source)),
      );
  }

  /** One model as /v1/models/{id} shows it: by name, or by content id; null when nothing answers to it. */
  servedModel(model: string): ServedAdapter | null {
    const entry = this.lookup(model);
    if (entry === null) return null;
    const handle = entry.handles.find((h) => h.name === model) ?? entry.handles[0];
    return this.served(entry, model, handle?.source ?? null);
  }

  /** By content id or by name (never by label). */
  find(model: string): ResidentAdapter | null {
    const entry = this.lookup(model);
    return entry === null ? null : this.view(entry);
  }

  /** Holds the adapter's slot for one request; throws when it is not resident (see notServed). */
  acquire(model: string): Lease {
    const entry = this.lookup(model);
    if (entry === null) throw notServed(model);
    entry.inFlight++;
    entry.lastUsedAt = this.now();
    let released = false;
    return {
      slot: entry.slot,
      adapterId: entry.adapterId,
      release: () => {
        if (released) return;
        released = true;
        entry.inFlight--;
        entry.lastUsedAt = this.now();
      },
    };
  }

  /**
   * The answer to a load of content that is already resident, without its bytes: pins and labels as a load
   * would. Null when the adapter is not resident.
   */
  reuse(adapterId: string, input: Omit<LoadInput, "config" | "weights">): LoadResult | null {
    const entry = this.byId(adapterId);
    if (entry === null) return null;
    return {
      adapter: this.keep(entry, { ...input, config: null, weights: new Uint8Array(0) }),
      loaded: false,
      loadMs: 0,
    };
  }

  async load(input: LoadInput): Promise<LoadResult> {
    const started = performance.now();
    const label = input.name ?? input.label ?? "adapter";
    const prepared = await this.prepare({
      config: input.config,
      weights: input.weights,
      label,
      ...(input.weightsSha256 === undefined ? {} : { weightsSha256: input.weightsSha256 }),
    });
    if (prepared.rank > this.engine.maxRank) {
      throw new AppError(
        "invalid_adapter",
        `adapter "${label}" has rank ${prepared.rank}; this runner's --max-lora-rank is ${this.engine.maxRank}`,
      );
    }
    if (input.expectedId !== undefined && input.expectedId !== prepared.adapterId) {
      throw new AppError(
        "invalid_adapter",
        `adapterId: the path names ${input.expectedId}; these weights and config give ${prepared.adapterId}`,
        { param: "adapterId" },
      );
    }
    // resolved after the await: another load of the same content may have finished meanwhile
    const existing = this.byId(prepared.adapterId);
    if (existing !== null) return { adapter: this.keep(existing, input), loaded: false, loadMs: 0 };
    this.checkNameFree(input.name ?? null, prepared.adapterId);
    const slot = this.freeSlot();
    this.engine.setSlot(slot, prepared.weights);
    const entry: Entry = {
      adapterId: prepared.adapterId,
      handles: input.name ? [{ name: input.name, source: input.source ?? null }] : [],
      label: input.label ?? null,
      slot,
      rank: prepared.rank,
      modules: prepared.weights.modules.length,
      sizeBytes: prepared.sizeBytes,
      pinned: input.pinned ?? false,
      loadedAt: this.now(),
      lastUsedAt: this.now(),
      inFlight: 0,
    };
    this.bySlot.set(slot, entry);
    const loadMs = performance.now() - started;
    this.metrics?.adapterLoads.inc();
    this.metrics?.adapterLoadSeconds.observe(loadMs / 1000);
    return { adapter: this.view(entry), loaded: true, loadMs };
  }

  /**
   * Drops a name, or frees the slot when that was its last name or `model` is the content id; freeing
   * refuses while requests use the slot. Dropping one of several names leaves the weights and the other
   * names serving, so it needs no such wait: running requests hold the slot, not the name.
   */
  unload(model: string): ResidentAdapter {
    const entry = this.lookup(model);
    if (entry === null)
      throw new AppError("not_found", `adapter "${model}" is not loaded`, { param: "lora_name" });
    const others = entry.handles.filter((h) => h.name !== model);
    if (model !== entry.adapterId && others.length > 0) {
      entry.handles = others;
      return this.view(entry);
    }
    if (entry.inFlight > 0) {
      throw new AppError(
        "conflict",
        `adapter "${model}" is in use by ${entry.inFlight} request(s); retry later`,
      );
    }
    this.engine.setSlot(entry.slot, null);
    this.bySlot.delete(entry.slot);
    return this.view(entry);
  }

  private keep(entry: Entry, input: LoadInput): ResidentAdapter {
    if (input.pinned) entry.pinned = true;
    if (input.label && entry.label === null) entry.label = input.label;
    if (input.name && !entry.handles.some((h) => h.name === input.name)) {
      this.checkNameFree(input.name, entry.adapterId);
      entry.handles.push({ name: input.name, source: input.source ?? null });
    }
    entry.lastUsedAt = this.now();
    return this.view(entry);
  }

  /** A name (or a content id) that resolves to other content is refused, as vLLM refuses a taken lora_name (400). */
  private checkNameFree(name: string | null, adapterId: string): void {
    if (name === null) return;
    const holder = this.lookup(name);
    if (holder && holder.adapterId !== adapterId) {
      throw new AppError(
        "invalid_request",
        `lora_name: "${name}" already names resident adapter ${holder.adapterId}, not these weights (${adapterId}); unload "${name}" first or choose another name`,
        { param: "lora_name" },
      );
    }
  }

  /** A free slot, or the slot of the least recently used idle, unpinned adapter (evicted). */
  private freeSlot(): number {
    for (let slot = 1; slot <= this.engine.maxSlots; slot++) if (!this.bySlot.has(slot)) return slot;
    const idle = [...this.bySlot.values()].filter((e) => !e.pinned && e.inFlight === 0);
    if (idle.length === 0) {
      throw new AppError(
        "unavailable",
        `all ${this.engine.maxSlots} adapter slots hold pinned or in-use adapters; retry later or raise --max-loras`,
      );
    }
    const victim = idle.reduce((a, b) => (b.lastUsedAt < a.lastUsedAt ? b : a));
    this.bySlot.delete(victim.slot);
    this.metrics?.adapterEvictions.inc();
    return victim.slot;
  }

  private byId(adapterId: string): Entry | null {
    for (const e of this.bySlot.values()) if (e.adapterId === adapterId) return e;
    return null;
  }

  private lookup(model: string): Entry | null {
    for (const e of this.bySlot.values()) if (e.adapterId === model) return e;
    for (const e of this.bySlot.values()) if (e.handles.some((h) => h.name === model)) return e;
    return null;
  }

  private names(e: Entry): string[] {
    return e.handles.map((h) => h.name);
  }

  private served(e: Entry, id: string, source: string | null): ServedAdapter {
    return { id, adapterId: e.adapterId, root: source ?? e.adapterId, loadedAt: e.loadedAt };
  }

  private view(e: Entry): ResidentAdapter {
    return {
      adapterId: e.adapterId,
      name: e.handles[0]?.name ?? e.label,
      names: this.names(e),
      slot: e.slot,
      rank: e.rank,
      modules: e.modules,
      sizeBytes: e.sizeBytes,
      pinned: e.pinned,
      loadedAt: new Date(e.loadedAt).toISOString(),
      lastUsedAt: new Date(e.lastUsedAt).toISOString(),
      inFlight: e.inFlight,
    };
  }
}
