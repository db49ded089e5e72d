import { describe, expect, it } from "vitest";
import { parseNumber, parseVariants, parseWeight, parseWeights } from "../../scripts/lib/experiment-args.ts";

describe("experiment CLI flags", () => {
  it("reads weights as basis points or percentages", () => {
    expect(parseWeight("9000", "w")).toBe(9000);
    expect(parseWeight("90%", "w")).toBe(9000);
    expect(parseWeight("12.5%", "w")).toBe(1250);
    expect(parseWeight("0.01%", "w")).toBe(1);
    for (const bad of ["10001", "100.5%", "-1", "1.234%", "x", ""]) {
      expect(() => parseWeight(bad, "w")).toThrow(
        `--w: a weight is basis points 0..10000 or a percentage like 12.5%; got ${JSON.stringify(bad)}`,
      );
    }
  });

  it("reads variant lists with targets that contain @ and names that the edge validates", () => {
    expect(parseVariants("control=support@prod:90%, treatment=support@2:1000", "variants", false)).toEqual([
      { name: "control", target: "support@prod", weight: 9000, shadow: false },
      { name: "treatment", target: "support@2", weight: 1000, shadow: false },
    ]);
    expect(parseVariants("", "shadows", true)).toEqual([]);
    expect(() => parseVariants("control=support@prod", "variants", false)).toThrow(/name=target:weight/);
    expect(parseWeights("a=80%,b=2000", "weights")).toEqual({ a: 8000, b: 2000 });
    expect(() => parseWeights("a", "weights")).toThrow(/name=weight; got "a"/);
    expect(parseNumber(undefined, "n", 0)).toBeUndefined();
    expect(() => parseNumber("1.5", "max-error-rate", 0, 1)).toThrow(/\[0, 1\]; got "1.5"/);
  });
});
