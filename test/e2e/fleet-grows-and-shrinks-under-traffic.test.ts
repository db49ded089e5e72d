// Runners join and leave a live edge while traffic flows (scripts/bench/fleet-scenario.ts: real wrangler dev,
// real runner processes joining with a fleet key): 8 join, one is drained by the operator, one is SIGKILLed,
// two more join. No unstreamed request is lost, each adapter stays warm on few runners, every runner that
// joined serves, and the drained runner exits cleanly after leaving.
import { describe, expect, it } from "vitest";
import { runFleetScenario } from "../../scripts/bench/fleet-scenario.ts";

describe("a fleet of 8 runners", () => {
  it("grows and shrinks under traffic without losing a request", { timeout: 300_000 }, async () => {
    const r = await runFleetScenario({ adapters: 12, clients: 4, phaseMs: 4_000 });
    expect(r.lost, r.lostSamples.join("\n")).toBe(0);
    expect(r.requests).toBeGreaterThan(50);
    expect(r.members).toBe(10);
    // the drained one left and the killed one's lease lapsed: 8 remain
    expect(r.finalMembers).toBe(8);
    expect(r.drainExit).toBe(0);
    expect(r.steadyLoads).toBeGreaterThan(0);
    expect(r.steadyLoads).toBeLessThanOrEqual(2 * r.adapters);
    // every runner that joined got work (the two that left may have left before a sample saw theirs)
    expect(r.joinToFirstMs.filter((ms) => Number.isFinite(ms)).length).toBeGreaterThanOrEqual(8);
  });
});
