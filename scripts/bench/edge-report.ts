// Tables of `npm run bench:edge`: latency rows gathered over several rounds (a shared machine is noisy, so
// each figure is the median over rounds, with the spread of the added p50 beside it), cold starts, the
// experiment overhead, and the marker-delimited section of BENCHMARKS.md they are written into.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { OverheadResult } from "./edge-experiment.ts";
import { median, type Percentiles } from "./edge-load.ts";

export interface LatencyRow {
  runner: string;
  model: string;
  concurrency: number;
  direct: Percentiles;
  edge: Percentiles;
  /** The bare proxy Worker in front of the same runner, where measured. */
  floor: Percentiles | null;
  /** Medians of the edge's own `server-timing` spans, e.g. "resolve 3.0, ttft 1.0". */
  spans: string;
}

export interface ColdRow {
  adapter: string;
  bytes: number;
  cold: number;
  warm: number;
  transfer: number;
  load: number;
}

const ms = (x: number) => x.toFixed(2);

function spread(xs: number[]): string {
  return xs.length < 2 ? "–" : `${ms(Math.min(...xs))}–${ms(Math.max(...xs))}`;
}

/** One line per (runner, request, concurrency): medians over the rounds in which it was measured. */
export function latencyTable(rows: LatencyRow[]): string {
  const groups = new Map<string, LatencyRow[]>();
  for (const r of rows) {
    const key = `${r.runner}\u0000${r.model}\u0000${r.concurrency}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const lines = [
    "| runner | request | conc. | rounds | direct p50 | edge p50 | added p50 (spread) | added p99 | floor p50 | over floor p50 | over floor p99 | edge spans (last round) |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const group of groups.values()) {
    const first = group[0] as LatencyRow;
    const of = (f: (r: LatencyRow) => number) => median(group.map(f));
    const added50 = group.map((r) => r.edge.p50 - r.direct.p50);
    const floored = group.filter((r) => r.floor !== null) as (LatencyRow & { floor: Percentiles })[];
    const overFloor = (f: (r: LatencyRow & { floor: Percentiles }) => number) =>
      floored.length === 0 ? "–" : `**${ms(median(floored.map(f)))}**`;
    lines.push(
      `| ${first.runner} | ${first.model} | ${first.concurrency} | ${group.length} | ${ms(of((r) => r.direct.p50))} | ` +
        `${ms(of((r) => r.edge.p50))} | **${ms(median(added50))}** (${spread(added50)}) | ` +
        `${ms(of((r) => r.edge.p99 - r.direct.p99))} | ` +
        `${floored.length === 0 ? "–" : ms(median(floored.map((r) => r.floor.p50)))} | ` +
        `${overFloor((r) => r.edge.p50 - r.floor.p50)} | ${overFloor((r) => r.edge.p99 - r.floor.p99)} | ` +
        `${group.at(-1)?.spans || "–"} |`,
    );
  }
  return lines.join("\n");
}

export function coldTable(rows: ColdRow[]): string {
  const lines = [
    "| adapter | bytes | cold TTFT | warm TTFT | cold − warm | transfer | target 1.5×transfer+20 | edge `load` span | met |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const r of rows) {
    const extra = r.cold - r.warm;
    const target = 1.5 * r.transfer + 20;
    lines.push(
      `| ${r.adapter} | ${r.bytes} | ${ms(r.cold)} | ${ms(r.warm)} | **${ms(extra)}** | ${ms(r.transfer)} | ${ms(target)} | ${ms(r.load)} | ${extra <= target ? "yes" : "no"} |`,
    );
  }
  return lines.join("\n");
}

export function experimentTable(r: OverheadResult): string {
  const us = (x: number) => `${(x * 1000).toFixed(1)} µs`;
  return [
    "| requests (pairs) | alias p50 | alias p95 | route p50 | route p95 | added p50 (median pair difference) | target | one assignment |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    `| ${r.requests} | ${ms(r.alias.p50)} | ${ms(r.alias.p95)} | ${ms(r.route.p50)} | ${ms(r.route.p95)} | **${r.addedP50.toFixed(3)}** | ≤ 0.200 | ${us(r.assignMs)} |`,
  ].join("\n");
}

export function writeSection(file: string, marker: string, text: string): void {
  const [open, close] = [`<!-- ${marker}:start -->`, `<!-- ${marker}:end -->`];
  const current = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n";
  const section = `${open}\n${text}\n${close}`;
  const at = current.indexOf(open);
  const next =
    at >= 0
      ? current.slice(0, at) + section + current.slice(current.indexOf(close) + close.length)
      : `${current.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
}
