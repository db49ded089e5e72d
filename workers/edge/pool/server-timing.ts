// `server-timing` (W3C Server Timing): where a request's time went before its first byte. In workerd the
// clock advances only across I/O, which is exactly what these spans are made of.

export type TimingName = "resolve" | "queue" | "load" | "ttft";

const DESCRIPTIONS: Record<TimingName, string> = {
  resolve: "model resolution",
  queue: "waiting at the edge (loads by other requests, failed runners)",
  load: "adapter load, R2 to runner",
  ttft: "runner first byte",
};

export class ServerTiming {
  readonly #spans = new Map<TimingName, number>();

  add(name: TimingName, ms: number): void {
    this.#spans.set(name, (this.#spans.get(name) ?? 0) + Math.max(0, ms));
  }

  /** Runs `work` and adds its duration under `name`. */
  async time<T>(name: TimingName, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.add(name, performance.now() - started);
    }
  }

  header(): string {
    return [...this.#spans]
      .map(([name, ms]) => `${name};dur=${ms.toFixed(1)};desc="${DESCRIPTIONS[name]}"`)
      .join(", ");
  }
}
