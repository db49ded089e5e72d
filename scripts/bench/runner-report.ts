// The runner benchmark's measuring and reporting: round-robin medians, the markdown table, and writing it
// between markers in a file (BENCHMARKS.md) so reruns replace their own section only.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { RunTiming } from "./runner-scenarios.ts";

export interface Row {
  name: string;
  tps: number;
  detail: string;
}

export interface Scenario {
  name: string;
  run: () => Promise<RunTiming>;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/**
 * Warms every scenario up, then runs them round-robin `repeats` times, so that load from other processes
 * (a shared machine) falls on all of them alike; reports each one's median.
 */
export async function measureAll(scenarios: Scenario[], repeats: number): Promise<Row[]> {
  const timings: RunTiming[][] = scenarios.map(() => []);
  for (const s of scenarios) {
    const t = await s.run();
    console.log(
      `  ${s.name}, warm-up: ${(t.tokens / t.seconds).toFixed(1)} tokens/s, prefill ${t.prefillMs.toFixed(0)} ms`,
    );
  }
  for (let i = 0; i < repeats; i++) {
    for (const [k, s] of scenarios.entries()) {
      const t = await s.run();
      timings[k]?.push(t);
      console.log(`  ${s.name}, run ${i + 1}: ${(t.tokens / t.seconds).toFixed(1)} tokens/s`);
    }
  }
  return scenarios.map((s, k) => {
    const t = timings[k] as RunTiming[];
    const tps = median(t.map((x) => x.tokens / x.seconds));
    const detail = `prefill ${median(t.map((x) => x.prefillMs)).toFixed(0)} ms, decode step ${median(t.map((x) => x.decodeStepMs)).toFixed(1)} ms`;
    console.log(`${s.name}: ${tps.toFixed(1)} tokens/s, ${detail}`);
    return { name: s.name, tps, detail };
  });
}

export function table(rows: Row[], base: number): string {
  const lines = ["| scenario | tokens/s | × base (no-LoRA graph) | detail |", "| --- | ---: | ---: | --- |"];
  for (const r of rows)
    lines.push(`| ${r.name} | ${r.tps.toFixed(1)} | ${(r.tps / base).toFixed(2)} | ${r.detail} |`);
  return lines.join("\n");
}

export function writeSection(file: string, marker: string, body: string): void {
  const [open, close] = [`<!-- ${marker}:start -->`, `<!-- ${marker}:end -->`];
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const section = `${open}\n${body}\n${close}`;
  const at = text.indexOf(open);
  const next =
    at >= 0
      ? text.slice(0, at) + section + text.slice(text.indexOf(close) + close.length)
      : `${text}\n${section}\n`;
  writeFileSync(file, next);
}
