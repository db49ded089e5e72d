// Prometheus text exposition (format 0.0.4) for the runner's counters, gauges and histograms. Small
// enough to hand-write; a client library would add a dependency for three metric kinds.

export type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`,
  );
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

export interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  render(): string[];
}

export class Counter implements Family {
  readonly type = "counter";
  readonly name: string;
  readonly help: string;
  private readonly values = new Map<string, number>();

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels)) ?? 0;
  }

  render(): string[] {
    return [...this.values].map(([labels, v]) => `${this.name}${labels} ${v}`);
  }
}

export class Gauge implements Family {
  readonly type = "gauge";
  readonly name: string;
  readonly help: string;
  private readonly read: () => number;

  /** Read when scraped, so the value can never go stale. */
  constructor(name: string, help: string, read: () => number) {
    this.name = name;
    this.help = help;
    this.read = read;
  }

  render(): string[] {
    return [`${this.name} ${this.read()}`];
  }
}

/** One series of a labelled gauge. */
export interface Sample {
  labels: Labels;
  value: number;
}

/** A gauge whose series (label sets and values) are all read when scraped. */
export class GaugeSeries implements Family {
  readonly type = "gauge";
  readonly name: string;
  readonly help: string;
  private readonly read: () => Sample[];

  constructor(name: string, help: string, read: () => Sample[]) {
    this.name = name;
    this.help = help;
    this.read = read;
  }

  render(): string[] {
    return this.read().map((s) => `${this.name}${labelText(s.labels)} ${s.value}`);
  }
}

/**
 * The info idiom (`name{...} 1`): labels that describe a series rather than identify it, joined on an id label
 * at query time. Read when scraped, so it lists exactly what is true now.
 */
export class Info implements Family {
  readonly type = "gauge";
  readonly name: string;
  readonly help: string;
  private readonly read: () => Labels[];

  constructor(name: string, help: string, read: () => Labels[]) {
    this.name = name;
    this.help = help;
    this.read = read;
  }

  render(): string[] {
    return this.read().map((labels) => `${this.name}${labelText(labels)} 1`);
  }
}

export interface HistogramOptions {
  labels?: Labels;
  /**
   * Write `le` as Python's prometheus_client does ("1.0", not "1"): a query selecting a bucket by its label
   * text, written against vLLM, then matches this runner's series too.
   */
  pythonLe?: boolean;
}

/** A bound as Python's repr writes it, for the bounds vLLM uses (below 1e6, so never in exponent form). */
function pythonFloat(n: number): string {
  return Number.isInteger(n) ? `${n}.0` : String(n);
}

export class Histogram implements Family {
  readonly type = "histogram";
  readonly name: string;
  readonly help: string;
  private readonly bounds: number[];
  private readonly counts: number[];
  /** Labels every series of this histogram carries (vLLM's `model_name`). */
  private readonly labels: Labels;
  private readonly le: (bound: number) => string;
  private sum = 0;
  private count = 0;

  constructor(name: string, help: string, bounds: number[], options: HistogramOptions = {}) {
    this.name = name;
    this.help = help;
    this.bounds = bounds;
    this.labels = options.labels ?? {};
    this.le = options.pythonLe ? pythonFloat : String;
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    this.bounds.forEach((b, i) => {
      if (value <= b) this.counts[i] = (this.counts[i] as number) + 1;
    });
  }

  render(): string[] {
    const bucket = (le: string, n: number) => `${this.name}_bucket${labelText({ ...this.labels, le })} ${n}`;
    const lines = this.bounds.map((b, i) => bucket(this.le(b), this.counts[i] as number));
    lines.push(bucket("+Inf", this.count));
    const labels = labelText(this.labels);
    lines.push(`${this.name}_sum${labels} ${this.sum}`, `${this.name}_count${labels} ${this.count}`);
    return lines;
  }
}

export interface RunnerMetrics {
  requests: Counter;
  promptTokens: Counter;
  generatedTokens: Counter;
  batchSize: Histogram;
  adapterLoads: Counter;
  adapterEvictions: Counter;
  adapterLoadSeconds: Histogram;
  /** Adds gauges read at scrape time (queue depth, running rows, resident adapters). */
  addGauge(name: string, help: string, read: () => number): void;
  /** Adds an info series read at scrape time: one `name{labels} 1` line per label set. */
  addInfo(name: string, help: string, read: () => Labels[]): void;
  /** Adds a family built elsewhere (vLLM's series in vllm-metrics.ts); rendered in the order added. */
  register<F extends Family>(family: F): F;
  render(): string;
}

export function createMetrics(): RunnerMetrics {
  const families: Family[] = [];
  const add = <F extends Family>(f: F): F => {
    families.push(f);
    return f;
  };
  return {
    requests: add(
      new Counter("runner_requests_total", "Generation requests accepted, by adapter content id"),
    ),
    promptTokens: add(
      new Counter("runner_prompt_tokens_total", "Prompt tokens prefilled, by adapter content id"),
    ),
    generatedTokens: add(
      new Counter("runner_generated_tokens_total", "Tokens generated, by adapter content id"),
    ),
    batchSize: add(new Histogram("runner_batch_size", "Rows per engine step", [1, 2, 4, 8, 16, 32, 64, 128])),
    adapterLoads: add(new Counter("runner_adapter_loads_total", "Adapters loaded into a slot")),
    adapterEvictions: add(new Counter("runner_adapter_evictions_total", "Adapters evicted to free a slot")),
    adapterLoadSeconds: add(
      new Histogram(
        "runner_adapter_load_seconds",
        "Adapter load latency",
        [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      ),
    ),
    addGauge: (name, help, read) => void add(new Gauge(name, help, read)),
    addInfo: (name, help, read) => void add(new Info(name, help, read)),
    register: add,
    render: () =>
      `${families
        .flatMap((f) => [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.render()])
        .join("\n")}\n`,
  };
}
