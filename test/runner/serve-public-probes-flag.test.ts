// --public-probes: true by default (vLLM leaves /health and /metrics open), false guards them with
// RUNNER_TOKEN like every other route; anything else is refused at start with the flag, the rule and the value.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../gpu-runner/serving/config.ts";

describe("--public-probes", () => {
  it("defaults to true and reads true, false and --no-public-probes", () => {
    expect(parseConfig(["--model", "m"], {}).publicProbes).toBe(true);
    expect(parseConfig(["--model", "m", "--public-probes", "false"], {}).publicProbes).toBe(false);
    expect(parseConfig(["--model", "m", "--public-probes=true"], {}).publicProbes).toBe(true);
    expect(parseConfig(["--model", "m", "--no-public-probes"], {}).publicProbes).toBe(false);
  });

  it("refuses any other value, and a misspelling of the flag", () => {
    expect(() => parseConfig(["--model", "m", "--public-probes", "no"], {})).toThrow(
      '--public-probes must be one of true, false; got "no"',
    );
    expect(() => parseConfig(["--model", "m", "--public-probe", "true"], {})).toThrow(
      "did you mean --public-probes?",
    );
  });
});
