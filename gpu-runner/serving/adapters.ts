// Adapter residency in two tiers. The host tier keeps every loaded adapter decoded and validated in RAM,
// under --max-cpu-loras (count) and --adapter-cache-bytes (bytes), LRU with pins; the GPU tier is the
// engine's slots 1..maxSlots, a subset of the host tier. A request holds its adapter in the host tier
// (never evicted while queued or running); the scheduler claims a slot for it when the row joins the batch,
// copying the weights from the host tier when they are not in a slot, so an adapter that lost its slot is
// served again without the edge (docs/architecture.md, "Adapter tiers").
//
// Slots are written only between engine steps: claims come from the scheduler's admission, and every other
// write (placing a fresh load, clearing an unloaded slot) goes through the StepGate. A slot whose adapter has
// rows in the batch is never rewritten.
//
// Identity is the content id (adapterId); names are extra handles for vLLM-style `lora_name` and static
// `--lora name=dir` adapters, several per adapter when the same content is loaded under several names (one
// copy of the weights; unloading one name keeps the others). The edge's label (`name@version`) is shown only:
// two tenants may both have a "support@3", so it must never resolve.
import {
  AdapterIdSchema,
  type HostAdapter,
  type HostTier,
  type ResidentAdapter,
} from "../../src/contracts/runner.ts";
import { AppError } from "../../src/errors.ts";
import type { AdapterWeights, Engine } from "../engine/types.ts";
import type { AdapterTierMetrics } from "./adapter-metrics.ts";
import type { RunnerMetrics } from "./metrics.ts";
import type { SlotClaim } from "./scheduler.ts";

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
  /** A handle requests may use as `model` (vLLM's lora_name, --lora); unique among loaded adapters. */
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
  adapter: HostAdapter;
  loaded: boolean;
  loadMs: number;
}

export interface Lease {
  /** 0 for the base model; for an adapter, the claim the scheduler resolves when the row joins the batch. */
  slot: number | SlotClaim;
  /**
   * What metrics count by: the content id, or "base" for the base model. Never a name or label: labels repeat
   * across tenants and names are reused after an unload, so neither can tell two adapters' traffic apart.
   */
  adapterId: string;
  release(): void;
}

/** When slot writes are safe: the engine refuses them while a step runs. */
export interface StepGate {
  /** Runs `fn` now when no engine step is in flight, else as soon as the current step has returned. */
  betweenSteps(fn: () => void): void;
}

/** The host tier's bounds. */
export interface HostTierLimits {
  /** --max-cpu-loras: most adapters held; null bounds by bytes only. */
  maxAdapters: number | null;
  /** --adapter-cache-bytes: most bytes of decoded weights held. */
  budgetBytes: number;
}

/** --adapter-cache-bytes when not given: 2 GiB of decoded weights. */
export const DEFAULT_ADAPTER_CACHE_BYTES = 2 * 1024 ** 3;

/**
 * Display labels of a loaded adapter for `runner_adapter_info`; "" where it has none (Prometheus: absent).
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
  weights: AdapterWeights;
  rank: number;
  modules: number;
  /** The uploaded safetensors file's size. */
  sizeBytes: number;
  /** What the decoded weights hold in host memory. */
  hostBytes: number;
  pinned: boolean;
  loadedAt: number;
  lastUsedAt: number;
  /** Requests holding a lease (queued or running): the adapter stays in the host tier while any do. */
  refs: number;
  /** The slot holding its weights, null when it is in host memory only. */
  slot: number | null;
  /** Rows in the running batch that use the slot: it is never rewritten while any do. */
  running: number;
  /** Slot writes so far: the first comes from a load, later ones are refills from the host tier. */
  placements: number;
}

/**
 * A slot taken out of admission so that a waiting adapter gets it: no new rows join it, and when its last
 * running row leaves, `for` is written there. One at a time, for the oldest request that found no slot, so
 * under pressure every adapter gets its turn while the other slots keep decoding.
 */
interface Drain {
  slot: number;
  for: Entry;
}

export interface AdapterCacheOptions {
  engine: Pick<Engine, "setSlot" | "maxSlots" | "maxRank">;
  prepare: PrepareAdapter;
  metrics?: RunnerMetrics;
  tierMetrics?: AdapterTierMetrics;
  /** Default: no count bound, DEFAULT_ADAPTER_CACHE_BYTES. */
  limits?: HostTierLimits;
  /** Default: writes at once (for an engine that no scheduler steps). */
  gate?: StepGate;
  now?: () => number;
}

const IMMEDIATE: StepGate = { betweenSteps: (fn) => fn() };

function decodedBytes(weights: AdapterWeights): number {
  return weights.modules.reduce((sum, m) => sum + m.a.byteLength + m.b.byteLength, 0);
}

export class AdapterCache {
  private readonly engine: AdapterCacheOptions["engine"];
  private readonly prepare: PrepareAdapter;
  private readonly metrics: RunnerMetrics | undefined;
  private readonly tierMetrics: AdapterTierMetrics | undefined;
  private readonly gate: StepGate;
  private readonly now: () => number;
  readonly limits: HostTierLimits;
  /** The host tier, in load order. */
  private readonly byId = new Map<string, Entry>();
  /** Index s holds slot s's adapter; index 0 (the base model) stays empty. */
  private readonly slots: (Entry | null)[];
  private drain: Drain | null = null;

  constructor(options: AdapterCacheOptions) {
    this.engine = options.engine;
    this.prepare = options.prepare;
    this.metrics = options.metrics;
    this.tierMetrics = options.tierMetrics;
    this.gate = options.gate ?? IMMEDIATE;
    this.now = options.now ?? Date.now;
    this.limits = options.limits ?? { maxAdapters: null, budgetBytes: DEFAULT_ADAPTER_CACHE_BYTES };
    this.slots = Array.from({ length: this.engine.maxSlots + 1 }, () => null);
  }

  get maxSlots(): number {
    return this.engine.maxSlots;
  }

  /** The GPU tier: adapters in slots, by slot. */
  list(): ResidentAdapter[] {
    return this.inSlots().map((e) => ({ ...this.tiered(e), slot: e.slot as number }));
  }

  /** The host tier's bounds and contents (every loaded adapter; `slot` says which are also in a slot). */
  host(): HostTier {
    const data = [...this.byId.values()].map((e) => this.tiered(e));
    return {
      maxAdapters: this.limits.maxAdapters,
      budgetBytes: this.limits.budgetBytes,
      usedBytes: this.usedBytes(),
      data,
    };
  }

  get hostCount(): number {
    return this.byId.size;
  }

  usedBytes(): number {
    let sum = 0;
    for (const e of this.byId.values()) sum += e.hostBytes;
    return sum;
  }

  info(): AdapterInfo[] {
    return [...this.byId.values()].map((e) => ({
      adapter_id: e.adapterId,
      name: this.names(e).join(","),
      label: e.label ?? "",
    }));
  }

  /** What requests may name as `model`: each handle name, or the content id of an adapter without one. */
  servedModels(): ServedAdapter[] {
    return [...this.byId.values()].flatMap((e) =>
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

  /** By content id or by name (never by label), in either tier. */
  find(model: string): HostAdapter | null {
    const entry = this.lookup(model);
    return entry === null ? null : this.tiered(entry);
  }

  /**
   * Holds the adapter in the host tier for one request; throws when it is in neither tier (see notServed).
   * The lease's slot is a claim: the scheduler resolves it between steps when the row joins the batch.
   */
  acquire(model: string): Lease {
    const entry = this.lookup(model);
    if (entry === null) throw notServed(model);
    entry.refs++;
    entry.lastUsedAt = this.now();
    let released = false;
    let claimed = false;
    const claim: SlotClaim = {
      claim: () => {
        if (claimed) return entry.slot;
        const slot = this.claim(entry);
        claimed = slot !== null;
        return slot;
      },
      leave: () => {
        if (!claimed) return;
        claimed = false;
        entry.running = Math.max(0, entry.running - 1);
        entry.lastUsedAt = this.now();
      },
    };
    return {
      slot: claim,
      adapterId: entry.adapterId,
      release: () => {
        if (released) return;
        released = true;
        entry.refs--;
        entry.lastUsedAt = this.now();
      },
    };
  }

  /**
   * The answer to a load of content that is already loaded (either tier), without its bytes: pins and labels
   * as a load would. Null when the adapter is in neither tier.
   */
  reuse(adapterId: string, input: Omit<LoadInput, "config" | "weights">): LoadResult | null {
    const entry = this.byId.get(adapterId) ?? null;
    if (entry === null) return null;
    return {
      adapter: this.keep(entry, { ...input, config: null, weights: new Uint8Array(0) }),
      loaded: false,
      loadMs: 0,
    };
  }

  /**
   * Validates and decodes an adapter into the host tier (evicting the least recently used idle, unpinned
   * adapters when a bound is reached), then puts it into a free or idle slot between steps if one exists.
   */
  async load(input: LoadInput): Promise<LoadResult> {
    const started = performance.now();
    const label = input.name ?? input.label ?? "adapter";
    if (this.engine.maxSlots === 0) {
      throw new AppError(
        "invalid_request",
        `adapter "${label}": this runner has no adapter slots (--max-loras 0); start it with --max-loras >= 1`,
      );
    }
    const prepared = await this.prepare({
      config: input.config,
      weights: input.weights,
      label,
      ...(input.weightsSha256 === undefined ? {} : { weightsSha256: input.weightsSha256 }),
    });
    this.tierMetrics?.prepareSeconds.observe((performance.now() - started) / 1000);
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
    const existing = this.byId.get(prepared.adapterId);
    if (existing !== undefined) return { adapter: this.keep(existing, input), loaded: false, loadMs: 0 };
    this.checkNameFree(input.name ?? null, prepared.adapterId);
    const hostBytes = decodedBytes(prepared.weights);
    this.makeRoom(label, hostBytes);
    const at = this.now();
    const entry: Entry = {
      adapterId: prepared.adapterId,
      handles: input.name ? [{ name: input.name, source: input.source ?? null }] : [],
      label: input.label ?? null,
      weights: prepared.weights,
      rank: prepared.rank,
      modules: prepared.weights.modules.length,
      sizeBytes: prepared.sizeBytes,
      hostBytes,
      pinned: input.pinned ?? false,
      loadedAt: at,
      lastUsedAt: at,
      refs: 0,
      slot: null,
      running: 0,
      placements: 0,
    };
    this.byId.set(entry.adapterId, entry);
    this.gate.betweenSteps(() => this.placeIdle(entry));
    const loadMs = performance.now() - started;
    this.metrics?.adapterLoads.inc();
    this.metrics?.adapterLoadSeconds.observe(loadMs / 1000);
    return { adapter: this.tiered(entry), loaded: true, loadMs };
  }

  /**
   * Drops a name, or the adapter from both tiers when that was its last name or `model` is the content id;
   * dropping the adapter refuses while requests use it. Dropping one of several names leaves the weights and
   * the other names serving, so it needs no such wait: requests hold the adapter, not the name.
   */
  unload(model: string): HostAdapter {
    const entry = this.lookup(model);
    if (entry === null)
      throw new AppError("not_found", `adapter "${model}" is not loaded`, { param: "lora_name" });
    const others = entry.handles.filter((h) => h.name !== model);
    if (model !== entry.adapterId && others.length > 0) {
      entry.handles = others;
      return this.tiered(entry);
    }
    const using = Math.max(entry.refs, entry.running);
    if (using > 0) {
      throw new AppError("conflict", `adapter "${model}" is in use by ${using} request(s); retry later`);
    }
    const view = this.tiered(entry);
    this.drop(entry);
    return view;
  }

  /**
   * Between steps only (the scheduler's admission). The slot for a row of `entry`: its own slot, or one it
   * is copied into (free, or holding an adapter no running row uses); null when every slot has running rows,
   * in which case a slot is set draining for it.
   */
  private claim(entry: Entry): number | null {
    this.settleDrain();
    if (entry.slot !== null) {
      if (this.drain?.slot === entry.slot) return null;
      entry.running++;
      entry.lastUsedAt = this.now();
      return entry.slot;
    }
    const slot = this.takeSlot(entry, "demand");
    if (slot === null) {
      this.startDrain(entry);
      return null;
    }
    this.write(entry, slot);
    entry.running++;
    return slot;
  }

  /** A fresh load goes into a slot only when that evicts nothing anyone waits for. */
  private placeIdle(entry: Entry): void {
    if (this.byId.get(entry.adapterId) !== entry || entry.slot !== null) return;
    const slot = this.takeSlot(entry, "idle");
    if (slot === null) return;
    try {
      this.write(entry, slot);
    } catch (error) {
      // it stays in host memory; a request's claim writes it again and reports the refusal to the caller
      console.error(`adapter ${entry.adapterId}: placing it into slot ${slot} failed:`, error);
    }
  }

  /**
   * A slot for `entry`, with its previous adapter evicted from it (that adapter stays in the host tier).
   * "demand" (a row waits): a free slot, the drained slot reserved for it, else the slot of an adapter with no
   * running rows: unpinned before pinned, no waiting requests before some, least recently used first.
   * "idle" (a fresh load): a free slot, or an unpinned adapter no request holds.
   */
  private takeSlot(entry: Entry, mode: "demand" | "idle"): number | null {
    const drain = this.settleDrain();
    if (drain !== null && drain.for === entry) {
      const holder = this.slots[drain.slot] ?? null;
      if (holder === null || holder.running === 0) {
        this.drain = null;
        if (holder !== null) this.evictFromSlot(holder);
        return drain.slot;
      }
    }
    const reserved = drain?.slot ?? -1;
    for (let s = 1; s <= this.engine.maxSlots; s++) {
      if (this.slots[s] === null && s !== reserved) return s;
    }
    const idle = this.inSlots().filter(
      (e) => e.running === 0 && e.slot !== reserved && (mode === "demand" || (!e.pinned && e.refs === 0)),
    );
    if (idle.length === 0) return null;
    const rank = (e: Entry) => [e.pinned ? 1 : 0, e.refs > 0 ? 1 : 0, e.lastUsedAt];
    const victim = idle.reduce((a, b) => (lexLess(rank(b), rank(a)) ? b : a));
    const slot = victim.slot as number;
    this.evictFromSlot(victim);
    return slot;
  }

  /** Picks the slot to drain for `entry`: unpinned first, then the fewest running rows, then LRU. */
  private startDrain(entry: Entry): void {
    if (this.settleDrain() !== null) return;
    const busy = this.inSlots().filter((e) => e !== entry);
    if (busy.length === 0) return;
    const rank = (e: Entry) => [e.pinned ? 1 : 0, e.running, e.lastUsedAt];
    const victim = busy.reduce((a, b) => (lexLess(rank(b), rank(a)) ? b : a));
    this.drain = { slot: victim.slot as number, for: entry };
    this.tierMetrics?.slotDrains.inc();
  }

  /** Drops a drain whose adapter no longer waits (its requests ended or timed out) or was unloaded. */
  private settleDrain(): Drain | null {
    const d = this.drain;
    if (d === null) return null;
    const waiting = d.for.refs - d.for.running;
    if (this.byId.get(d.for.adapterId) !== d.for || waiting <= 0 || d.for.slot !== null) this.drain = null;
    return this.drain;
  }

  private write(entry: Entry, slot: number): void {
    const started = performance.now();
    this.engine.setSlot(slot, entry.weights);
    this.slots[slot] = entry;
    entry.slot = slot;
    entry.placements++;
    this.tierMetrics?.slotWrites.inc({ source: entry.placements === 1 ? "load" : "host" });
    this.tierMetrics?.slotWriteSeconds.observe((performance.now() - started) / 1000);
  }

  private evictFromSlot(entry: Entry): void {
    if (entry.slot === null) return;
    this.slots[entry.slot] = null;
    entry.slot = null;
    this.metrics?.adapterEvictions.inc();
  }

  /** Removes an adapter from both tiers; its slot is cleared between steps unless it was refilled first. */
  private drop(entry: Entry): void {
    this.byId.delete(entry.adapterId);
    if (this.drain !== null && (this.drain.for === entry || this.drain.slot === entry.slot))
      this.drain = null;
    const slot = entry.slot;
    if (slot === null) return;
    this.slots[slot] = null;
    entry.slot = null;
    this.gate.betweenSteps(() => {
      if (this.slots[slot] === null) this.engine.setSlot(slot, null);
    });
  }

  /**
   * Evicts from the host tier until one more adapter of `bytes` fits: the least recently used adapters that
   * are unpinned and held by no request, those without a slot first. Refuses before evicting anything when
   * that cannot make room, so a refused load changes nothing.
   */
  private makeRoom(label: string, bytes: number): void {
    const { maxAdapters, budgetBytes } = this.limits;
    if (bytes > budgetBytes) {
      throw new AppError(
        "payload_too_large",
        `adapter "${label}" needs ${bytes} bytes of host memory decoded; --adapter-cache-bytes is ${budgetBytes}`,
      );
    }
    let count = this.byId.size;
    let used = this.usedBytes();
    const fits = () => (maxAdapters === null || count + 1 <= maxAdapters) && used + bytes <= budgetBytes;
    if (fits()) return;
    const evictable = [...this.byId.values()]
      .filter((e) => !e.pinned && e.refs === 0 && e.running === 0)
      .sort((a, b) => (a.slot === null ? 0 : 1) - (b.slot === null ? 0 : 1) || a.lastUsedAt - b.lastUsedAt);
    const victims: Entry[] = [];
    for (const e of evictable) {
      if (fits()) break;
      victims.push(e);
      count--;
      used -= e.hostBytes;
    }
    if (!fits()) {
      const limit = maxAdapters === null ? "" : `--max-cpu-loras ${maxAdapters}, `;
      throw new AppError(
        "unavailable",
        `host memory tier is full: ${this.byId.size} adapters, ${this.usedBytes()} bytes (${limit}--adapter-cache-bytes ${budgetBytes}) are pinned or in use; retry later or raise the limits`,
      );
    }
    for (const e of victims) {
      this.drop(e);
      this.tierMetrics?.hostEvictions.inc();
    }
  }

  private keep(entry: Entry, input: LoadInput): HostAdapter {
    if (input.pinned) entry.pinned = true;
    if (input.label && entry.label === null) entry.label = input.label;
    if (input.name && !entry.handles.some((h) => h.name === input.name)) {
      this.checkNameFree(input.name, entry.adapterId);
      entry.handles.push({ name: input.name, source: input.source ?? null });
    }
    entry.lastUsedAt = this.now();
    // a load of an adapter held in host memory only warms its slot as a fresh load would
    if (entry.slot === null) this.gate.betweenSteps(() => this.placeIdle(entry));
    return this.tiered(entry);
  }

  /** A name (or a content id) that resolves to other content is refused, as vLLM refuses a taken lora_name (400). */
  private checkNameFree(name: string | null, adapterId: string): void {
    if (name === null) return;
    const holder = this.lookup(name);
    if (holder && holder.adapterId !== adapterId) {
      throw new AppError(
        "invalid_request",
        `lora_name: "${name}" already names loaded adapter ${holder.adapterId}, not these weights (${adapterId}); unload "${name}" first or choose another name`,
        { param: "lora_name" },
      );
    }
  }

  private inSlots(): Entry[] {
    return this.slots.filter((e): e is Entry => e !== null);
  }

  private lookup(model: string): Entry | null {
    const byId = this.byId.get(model);
    if (byId !== undefined) return byId;
    for (const e of this.byId.values()) if (e.handles.some((h) => h.name === model)) return e;
    return null;
  }

  private names(e: Entry): string[] {
    return e.handles.map((h) => h.name);
  }

  private served(e: Entry, id: string, source: string | null): ServedAdapter {
    return { id, adapterId: e.adapterId, root: source ?? e.adapterId, loadedAt: e.loadedAt };
  }

  private tiered(e: Entry): HostAdapter {
    return {
      adapterId: e.adapterId,
      name: e.handles[0]?.name ?? e.label,
      names: this.names(e),
      slot: e.slot,
      rank: e.rank,
      modules: e.modules,
      sizeBytes: e.sizeBytes,
      hostBytes: e.hostBytes,
      pinned: e.pinned,
      loadedAt: new Date(e.loadedAt).toISOString(),
      lastUsedAt: new Date(e.lastUsedAt).toISOString(),
      inFlight: e.refs,
    };
  }
}

function lexLess(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if ((a[i] as number) !== (b[i] as number)) return (a[i] as number) < (b[i] as number);
  }
  return false;
}
