// Write-through invalidation inside one isolate. A store announces what it changed; the per-isolate caches,
// which wrap the stores, listen and forget their entries at once, so read-your-writes holds within an
// isolate. Stores never import caches: caches sit above stores (docs/architecture.md#layers).
export type Change =
  | { readonly kind: "key"; readonly hash: string }
  | { readonly kind: "adapter"; readonly tenant: string; readonly name: string }
  | { readonly kind: "base_models" };

type Listener = (change: Change) => void;

const listeners = new Set<Listener>();

/** Registers a listener for the isolate's lifetime; the returned function removes it. */
export function onChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Called by a store after its write committed. Listeners are synchronous and must not throw. */
export function announce(change: Change): void {
  for (const listener of listeners) listener(change);
}
