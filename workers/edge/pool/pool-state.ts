// What one isolate knows about the runner pool: requests in flight per runner, which runners failed lately,
// which adapters each runner holds (learned from answers and listings), and adapter loads under way. It is
// per isolate on purpose: isolates share nothing, so correctness never rests on it. A runner that evicted an
// adapter says `adapter_not_loaded`, and a runner answers a second PUT of an adapter it holds or is loading
// without a second load, so stale or missing knowledge costs a round trip, never a wrong answer.

/** Most adapter ids remembered per runner; the oldest are forgotten first. */
const MAX_RESIDENT_IDS = 4096;
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export interface RunnerState {
  inFlight: number;
  failures: number;
  /** The runner is tried last until then (epoch ms). */
  downUntil: number;
  resident: Set<string>;
}

export class PoolState {
  readonly #runners = new Map<string, RunnerState>();
  /** Adapter loads under way, by `url \n adapterId`. */
  readonly loads = new Map<string, Promise<unknown>>();
  /** When the runners' listings were last read (epoch ms). */
  refreshedAt = 0;

  runner(url: string): RunnerState {
    let state = this.#runners.get(url);
    if (state === undefined) {
      state = { inFlight: 0, failures: 0, downUntil: 0, resident: new Set() };
      this.#runners.set(url, state);
    }
    return state;
  }

  healthy(url: string, now: number): boolean {
    return now >= this.runner(url).downUntil;
  }

  /** Exponential backoff: a dead runner costs each isolate one failed attempt per backoff period. */
  failed(url: string, now: number): void {
    const state = this.runner(url);
    state.failures++;
    state.downUntil = now + Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (state.failures - 1));
  }

  succeeded(url: string): void {
    const state = this.runner(url);
    state.failures = 0;
    state.downUntil = 0;
  }

  setResident(url: string, adapterId: string, resident: boolean): void {
    const set = this.runner(url).resident;
    set.delete(adapterId);
    if (!resident) return;
    set.add(adapterId);
    if (set.size > MAX_RESIDENT_IDS) set.delete(set.values().next().value as string);
  }

  replaceResident(url: string, adapterIds: string[]): void {
    const set = this.runner(url).resident;
    set.clear();
    for (const id of adapterIds.slice(-MAX_RESIDENT_IDS)) set.add(id);
  }
}

const shared = new Map<string, PoolState>();

/** The isolate's state for one pool configuration (a changed config starts afresh). */
export function sharedPoolState(signature: string): PoolState {
  let state = shared.get(signature);
  if (state === undefined) {
    state = new PoolState();
    shared.set(signature, state);
  }
  return state;
}
