// A small parser for the Prometheus text exposition format (0.0.4), strict enough to catch what a scraper
// would refuse: samples before their TYPE, malformed labels, values that are not numbers, a family declared
// twice. Tests read metrics through it instead of matching lines.

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface PromSample {
  /** The sample's own name: `x_bucket`, `x_sum`, `x_count` for a histogram `x`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (text === "NaN") return Number.NaN;
  const n = Number(text);
  if (text === "" || Number.isNaN(n)) throw new Error(`not a sample value: ${JSON.stringify(line)}`);
  return n;
}

/** Labels between `{` and `}`, with \\, \" and \n escapes; returns them and the index after `}`. */
function parseLabels(line: string, start: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  while (line[i] !== "}") {
    const eq = line.indexOf("=", i);
    if (eq < 0) throw new Error(`label without "=": ${JSON.stringify(line)}`);
    const key = line.slice(i, eq);
    if (!LABEL.test(key)) throw new Error(`bad label name ${JSON.stringify(key)} in ${JSON.stringify(line)}`);
    if (key in labels) throw new Error(`label ${key} repeated in ${JSON.stringify(line)}`);
    if (line[eq + 1] !== '"') throw new Error(`label value not quoted: ${JSON.stringify(line)}`);
    let value = "";
    let j = eq + 2;
    for (; j < line.length && line[j] !== '"'; j++) {
      if (line[j] === "\\") {
        const next = line[++j];
        if (next === "n") value += "\n";
        else if (next === "\\" || next === '"') value += next;
        else throw new Error(`bad escape \\${next} in ${JSON.stringify(line)}`);
      } else value += line[j];
    }
    if (j >= line.length) throw new Error(`unterminated label value: ${JSON.stringify(line)}`);
    labels[key] = value;
    i = j + 1;
    if (line[i] === ",") i++;
    else if (line[i] !== "}") throw new Error(`expected "," or "}" in ${JSON.stringify(line)}`);
  }
  return { labels, end: i + 1 };
}

function familyOf(sample: string, families: Map<string, PromFamily>): PromFamily | undefined {
  const exact = families.get(sample);
  if (exact) return exact;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sample.endsWith(suffix)) continue;
    const family = families.get(sample.slice(0, -suffix.length));
    if (family?.type === "histogram" || family?.type === "summary") return family;
  }
  return undefined;
}

export function parsePrometheusText(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  const help = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("# HELP ")) {
      const [name, ...rest] = line.slice("# HELP ".length).split(" ");
      help.set(name as string, rest.join(" "));
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice("# TYPE ".length).split(" ") as [string, MetricType];
      if (!NAME.test(name)) throw new Error(`bad metric name ${JSON.stringify(name)}`);
      if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(type))
        throw new Error(`bad type ${JSON.stringify(type)} for ${name}`);
      if (families.has(name)) throw new Error(`family ${name} declared twice`);
      families.set(name, { name, type, help: help.get(name) ?? "", samples: [] });
      continue;
    }
    if (line.startsWith("#")) continue;
    const brace = line.indexOf("{");
    const space = line.indexOf(" ");
    const nameEnd = brace >= 0 && brace < space ? brace : space;
    if (nameEnd <= 0) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const name = line.slice(0, nameEnd);
    if (!NAME.test(name)) throw new Error(`bad metric name ${JSON.stringify(name)}`);
    const { labels, end } = line[nameEnd] === "{" ? parseLabels(line, nameEnd) : { labels: {}, end: nameEnd };
    if (line[end] !== " ") throw new Error(`expected a space before the value: ${JSON.stringify(line)}`);
    // an optional timestamp may follow the value
    const value = parseValue(line.slice(end + 1).split(" ")[0] as string, line);
    const family = familyOf(name, families);
    if (family === undefined) throw new Error(`sample ${name} has no # TYPE before it`);
    family.samples.push({ name, labels, value });
  }
  return families;
}

export interface HistogramSeries {
  /** Bucket upper bounds in the order exposed, +Inf last, with cumulative counts. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

/**
 * One histogram series (the samples whose labels, `le` aside, equal `labels`), checked as a scraper would:
 * bounds increasing, counts cumulative, a +Inf bucket equal to _count. Throws on any violation.
 */
export function histogramSeries(family: PromFamily, labels: Record<string, string>): HistogramSeries {
  if (family.type !== "histogram") throw new Error(`${family.name} is a ${family.type}, not a histogram`);
  const same = (l: Record<string, string>) => {
    const { le: _le, ...rest } = l;
    return JSON.stringify(Object.entries(rest).sort()) === JSON.stringify(Object.entries(labels).sort());
  };
  const mine = family.samples.filter((s) => same(s.labels));
  const buckets = mine
    .filter((s) => s.name === `${family.name}_bucket`)
    .map((s) => ({ le: parseValue(s.labels.le ?? "", `le of ${family.name}`), count: s.value }));
  const sum = mine.find((s) => s.name === `${family.name}_sum`)?.value;
  const count = mine.find((s) => s.name === `${family.name}_count`)?.value;
  if (sum === undefined || count === undefined) throw new Error(`${family.name}: _sum or _count missing`);
  if (buckets.at(-1)?.le !== Number.POSITIVE_INFINITY) throw new Error(`${family.name}: no +Inf bucket last`);
  buckets.forEach((b, i) => {
    const prev = buckets[i - 1];
    if (prev && !(b.le > prev.le)) throw new Error(`${family.name}: bounds not increasing at le=${b.le}`);
    if (prev && b.count < prev.count) throw new Error(`${family.name}: counts not cumulative at le=${b.le}`);
  });
  if (buckets.at(-1)?.count !== count) throw new Error(`${family.name}: +Inf bucket != _count`);
  return { buckets, sum, count };
}
