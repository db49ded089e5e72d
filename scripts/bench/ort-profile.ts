// Summarises an onnxruntime profile (the JSON trace `enableProfiling` writes): kernel time per op type and
// per node (layer index folded, so "layers.*.attn/MatMul" sums over layers), per run.
import { readFileSync } from "node:fs";

interface TraceEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}

export interface ProfileSummary {
  runs: number;
  /** Milliseconds of kernel time per run. */
  kernelMs: number;
  byOp: [string, number][];
  byNode: [string, number][];
}

export function summariseProfile(path: string, top = 12): ProfileSummary {
  const events = JSON.parse(readFileSync(path, "utf8")) as TraceEvent[];
  const runs = Math.max(1, events.filter((e) => e.cat === "Session" && e.name === "model_run").length);
  const byOp = new Map<string, number>();
  const byNode = new Map<string, number>();
  let total = 0;
  for (const e of events) {
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
    const op = e.args?.op_name ?? "?";
    const node = e.name
      .replace(/_kernel_time$/, "")
      .replace(/layers\.\d+/, "layers.*")
      .replace(/_\d+(:\d+)?$/, "");
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    byNode.set(node, (byNode.get(node) ?? 0) + e.dur);
    total += e.dur;
  }
  const perRun = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]): [string, number] => [k, us / 1000 / runs]);
  return { runs, kernelMs: total / 1000 / runs, byOp: perRun(byOp), byNode: perRun(byNode) };
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [
    `kernel time per run: ${s.kernelMs.toFixed(2)} ms over ${s.runs} runs`,
    "",
    "| op | ms/run | share |",
    "| --- | ---: | ---: |",
  ];
  for (const [op, ms] of s.byOp)
    lines.push(`| ${op} | ${ms.toFixed(3)} | ${((100 * ms) / s.kernelMs).toFixed(1)}% |`);
  return lines.join("\n");
}
