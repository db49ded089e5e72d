// Summarises an onnxruntime profile (the JSON trace `enableProfiling` writes), per run:
// - host time per op type and per node (cat "Node", `<node>_kernel_time`): the time each kernel's Compute
//   takes on the host; on WebGPU that is encoding and dispatch, not the shader;
// - device time per op type (cat "Api", written by the WebGPU provider from timestamp queries where the
//   adapter has them): what the shaders take on the GPU.
// Layer indices are folded, so "layers.*.attn/MatMul" sums over layers.
import { readFileSync } from "node:fs";

interface TraceEvent {
  cat: string;
  name: string;
  dur: number;
  args?: Record<string, unknown>;
}

export interface ProfileSummary {
  runs: number;
  /** Milliseconds of host kernel time per run (Compute calls). */
  kernelMs: number;
  byOp: [string, number][];
  byNode: [string, number][];
  /** Node calls per run. */
  nodes: number;
  /** Milliseconds of device time per run, when the provider wrote GPU timestamps (else 0). */
  deviceMs: number;
  deviceByOp: [string, number][];
  /** Shader dispatches per run that carried a timestamp. */
  dispatches: number;
  /** Wall time of `model_run` per run. */
  runMs: number;
}

const fold = (name: string) =>
  name
    .replace(/_kernel_time$/, "")
    .replace(/layers\.\d+/, "layers.*")
    .replace(/_\d+(:\d+)?$/, "");

function sortedPerRun(m: Map<string, number>, runs: number, top: number): [string, number][] {
  return [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]): [string, number] => [k, us / 1000 / runs]);
}

/** The op type of a device event: its name is `<node name>&<op>` or similar; take what names the op. */
function deviceOp(e: TraceEvent): string {
  const fromArgs = e.args?.op_name ?? e.args?.op_type;
  if (typeof fromArgs === "string") return fromArgs;
  const parts = e.name.split(/[&|]/);
  return parts.length > 1 ? (parts[1] as string) : fold(e.name).replace(/^.*\//, "");
}

export function summariseProfile(path: string, top = 12): ProfileSummary {
  const events = JSON.parse(readFileSync(path, "utf8")) as TraceEvent[];
  const runEvents = events.filter((e) => e.cat === "Session" && e.name === "model_run");
  const runs = Math.max(1, runEvents.length);
  const byOp = new Map<string, number>();
  const byNode = new Map<string, number>();
  const deviceByOp = new Map<string, number>();
  let total = 0;
  let nodes = 0;
  let device = 0;
  let dispatches = 0;
  for (const e of events) {
    if (e.cat === "Node" && e.name.endsWith("_kernel_time")) {
      const op = typeof e.args?.op_name === "string" ? e.args.op_name : "?";
      byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
      byNode.set(fold(e.name), (byNode.get(fold(e.name)) ?? 0) + e.dur);
      total += e.dur;
      nodes++;
    } else if (e.cat === "Api") {
      const op = deviceOp(e);
      deviceByOp.set(op, (deviceByOp.get(op) ?? 0) + e.dur);
      device += e.dur;
      dispatches++;
    }
  }
  return {
    runs,
    kernelMs: total / 1000 / runs,
    byOp: sortedPerRun(byOp, runs, top),
    byNode: sortedPerRun(byNode, runs, top),
    nodes: nodes / runs,
    deviceMs: device / 1000 / runs,
    deviceByOp: sortedPerRun(deviceByOp, runs, top),
    dispatches: dispatches / runs,
    runMs: runEvents.reduce((a, e) => a + e.dur, 0) / 1000 / runs,
  };
}

function table(rows: [string, number][], totalMs: number, head: string): string[] {
  const lines = [`| ${head} | ms/run | share |`, "| --- | ---: | ---: |"];
  for (const [k, ms] of rows)
    lines.push(`| ${k} | ${ms.toFixed(3)} | ${((100 * ms) / totalMs).toFixed(1)}% |`);
  return lines;
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [
    `${s.runs} runs; per run: wall ${s.runMs.toFixed(2)} ms, ${s.nodes.toFixed(0)} node calls taking ${s.kernelMs.toFixed(2)} ms of host time (Compute), ` +
      (s.dispatches > 0
        ? `${s.dispatches.toFixed(0)} timed dispatches taking ${s.deviceMs.toFixed(2)} ms on the device`
        : "no device timestamps in the trace"),
    "",
    "Host time per op (Compute calls):",
    "",
    ...table(s.byOp, s.kernelMs, "op"),
    "",
    "Host time per node (layers folded):",
    "",
    ...table(s.byNode, s.kernelMs, "node"),
  ];
  if (s.dispatches > 0) {
    lines.push("", "Device time per op (GPU timestamps):", "", ...table(s.deviceByOp, s.deviceMs, "op"));
  }
  return lines.join("\n");
}
