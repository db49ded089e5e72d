// `npm run bench:fleet`: the fleet scenario (fleet-scenario.ts) with 8 runners joining, one drained, one
// SIGKILLed and two more joining under traffic; prints what BENCHMARKS.md ("Runner fleets") records.
import { runFleetScenario } from "./fleet-scenario.ts";

const r = await runFleetScenario({ log: (line) => console.log(`fleet: ${line}`) });
const joins = r.joinToFirstMs.filter((ms) => Number.isFinite(ms)).map((ms) => Math.round(ms));
const sorted = [...joins].sort((a, b) => a - b);
console.log(
  JSON.stringify(
    {
      runnersStarted: r.members,
      membersAtEnd: r.finalMembers,
      adapters: r.adapters,
      requests: r.requests,
      requestsLost: r.lost,
      lostSamples: r.lostSamples,
      adapterLoadsSteady4Runners: r.steadyLoads,
      adapterLoadsPerAdapterSteady: +(r.steadyLoads / r.adapters).toFixed(2),
      adapterLoadsTotal: r.totalLoads,
      inFlightSpreadMaxOverMean: +r.spread.toFixed(2),
      joinToFirstRequestMs: { each: joins, median: sorted[Math.floor(sorted.length / 2)] ?? null },
      drainToExitMs: Math.round(r.drainToExitMs),
      drainExitCode: r.drainExit,
    },
    null,
    2,
  ),
);
