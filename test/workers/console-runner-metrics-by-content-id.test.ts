// The runners page reads per-adapter traffic only by content id: a display label repeats across tenants.
import { describe, expect, it } from "vitest";
import { metricsByAdapter, parseSamples, sumMetrics } from "../../workers/edge/console/prometheus-text.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);

describe("runner /metrics as the console reads it", () => {
  it("keys counters by adapter_id and keeps two adapters with one label apart", () => {
    const samples = parseSamples(
      [
        "# HELP runner_requests_total Generation requests accepted, by adapter content id",
        "# TYPE runner_requests_total counter",
        `runner_requests_total{adapter_id="${A}"} 2`,
        `runner_requests_total{adapter_id="${B}"} 5`,
        'runner_requests_total{adapter_id="base"} 1',
        `runner_generated_tokens_total{adapter_id="${A}"} 30`,
        `runner_adapter_info{adapter_id="${A}",name="",label="support@3"} 1`,
        `runner_adapter_info{adapter_id="${B}",name="",label="support@3"} 1`,
        'runner_batch_size_bucket{le="+Inf"} 8',
        "runner_batch_size_count 8",
        "not a sample",
      ].join("\n"),
    );
    const byAdapter = metricsByAdapter(samples);
    expect(byAdapter.get(A)?.get("runner_requests_total")).toBe(2);
    expect(byAdapter.get(A)?.get("runner_generated_tokens_total")).toBe(30);
    expect(byAdapter.get(B)?.get("runner_requests_total")).toBe(5);
    expect(byAdapter.get(B)?.has("runner_generated_tokens_total")).toBe(false);
    expect(byAdapter.get("base")?.get("runner_requests_total")).toBe(1);
    expect([...byAdapter.keys()].sort()).toEqual([A, B, "base"].sort());
    const sums = sumMetrics(samples);
    expect(sums.get("runner_requests_total")).toBe(8);
    expect(sums.get("runner_batch_size_count")).toBe(8);
    expect(sums.has("runner_batch_size_bucket")).toBe(false);
  });

  it("reads escaped label values and never keys by a display label", () => {
    const samples = parseSamples(
      [
        'runner_adapter_info{adapter_id="base",name="say \\"hi\\"\\\\n",label="x,y=z"} 1',
        'runner_requests_total{adapter="support@3"} 4',
      ].join("\n"),
    );
    expect(samples[0]?.labels).toEqual({ adapter_id: "base", name: 'say "hi"\\n', label: "x,y=z" });
    // An older runner labelled by name@version: its adapters stay unknown ("–" on the page), never matched.
    expect([...metricsByAdapter(samples).keys()]).toEqual(["base"]);
  });
});
