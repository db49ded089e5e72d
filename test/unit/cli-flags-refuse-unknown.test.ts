import { describe, expect, it } from "vitest";
import { closestFlag, refuseUnknownFlags, wantsHelp } from "../../cli/flags.ts";

describe("command-line flags", () => {
  const known = ["name", "base", "alias", "dry-run", "max-loras"];

  it("suggests the known flag a typo is nearest to, and nothing for a stranger", () => {
    expect(closestFlag("alais", known)).toBe("alias");
    expect(closestFlag("max-lora", known)).toBe("max-loras");
    expect(closestFlag("lora-modules", known)).toBeNull();
  });

  it("refuses every unknown flag at once, and passes known ones, --no-x, --help and what follows --", () => {
    expect(() => refuseUnknownFlags(["--alais", "prod", "--nmae=x"], known)).toThrow(
      "--alais: not a flag of this command; did you mean --alias?; --nmae: not a flag of this command; did you mean --name?",
    );
    expect(() =>
      refuseUnknownFlags(["dir", "--name", "a", "--no-dry-run", "--help", "--", "--anything"], known),
    ).not.toThrow();
  });

  it("reads --help only before --", () => {
    expect(wantsHelp(["--", "--help"])).toBe(false);
    expect(wantsHelp(["-h"])).toBe(true);
  });
});
