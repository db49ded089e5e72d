// The one per-isolate cache of the edge's hot path: entries expire after a fixed time, the least recently
// used one goes when the cache is full, and concurrent misses for one key share one load. A Worker isolate
// serves many requests, so a few seconds of memory saves a D1 round trip on nearly every request; each user
// of this class says why its TTL is safe.

export interface TtlLruOptions {
  /** Upper bound on entries: an isolate has 128 MB, and keys come from callers. */
  maxEntries: number;
  /** How long an entry is served without a reload; Infinity for values that never change. */
  ttlMs: number;
  now?: () => number;
}

interface Entry<V> {
  value: V;
  until: number;
}

export class TtlLru<V> {
  readonly #entries = new Map<string, Entry<V>>();
  readonly #loading = new Map<string, Promise<V | null>>();
  readonly #max: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: TtlLruOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError(`maxEntries must be an integer >= 1; got ${options.maxEntries}`);
    }
    if (!(options.ttlMs > 0)) throw new RangeError(`ttlMs must be > 0; got ${options.ttlMs}`);
    this.#max = options.maxEntries;
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? (() => Date.now());
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): V | undefined {
    const hit = this.#entries.get(key);
    if (hit === undefined) return undefined;
    if (hit.until <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    // A Map iterates in insertion order: re-inserting makes this the most recently used entry.
    this.#entries.delete(key);
    this.#entries.set(key, hit);
    return hit.value;
  }

  set(key: string, value: V): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, until: this.#now() + this.#ttlMs });
  }

  /**
   * The cached value, or the loader's. A null from the loader is returned but not kept (misses are not
   * cached: something created a moment later must be found). A load that was overtaken by `delete` is not
   * kept either, so a write followed by `delete` is never undone by a read that started before it.
   */
  async getOrLoad(key: string, load: () => Promise<V | null>): Promise<V | null> {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const pending = this.#loading.get(key);
    if (pending !== undefined) return await pending;
    const loading = load();
    this.#loading.set(key, loading);
    try {
      const value = await loading;
      if (value !== null && this.#loading.get(key) === loading) this.set(key, value);
      return value;
    } finally {
      if (this.#loading.get(key) === loading) this.#loading.delete(key);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
    this.#loading.delete(key);
  }

  /** Deletes every entry whose key matches; for writes that change a family of keys (an adapter's refs). */
  deleteWhere(matches: (key: string) => boolean): void {
    for (const key of [...this.#entries.keys()]) if (matches(key)) this.#entries.delete(key);
    for (const key of [...this.#loading.keys()]) if (matches(key)) this.#loading.delete(key);
  }

  clear(): void {
    this.#entries.clear();
    this.#loading.clear();
  }
}
