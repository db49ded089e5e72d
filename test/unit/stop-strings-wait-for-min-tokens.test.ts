// vLLM looks for stop strings only in text from tokens after the first min_tokens: text pushed without the
// check never stops generation, even when a stop string lies wholly inside it, while one that ends in checked
// text stops it even if it began before. The matcher also names the stop string it found, for
// include_stop_str_in_output.
import { describe, expect, it } from "vitest";
import { createStopMatcher } from "../../gpu-runner/engine/tokenizer/stop-strings.ts";

describe("stop strings and min_tokens", () => {
  it("passes unchecked text through even when it holds a stop string", () => {
    const m = createStopMatcher(["END"]);
    expect(m.push("xxENDyy", false)).toEqual({ text: "xxENDyy", stopped: false });
    expect(m.push(" more", true)).toEqual({ text: " more", stopped: false });
    expect(m.matched()).toBeNull();
  });

  it("stops on a stop string that ends in checked text, though it began in unchecked text", () => {
    const m = createStopMatcher(["END"]);
    expect(m.push("abEN", false)).toEqual({ text: "ab", stopped: false });
    expect(m.push("D tail", true)).toEqual({ text: "", stopped: true });
    expect(m.matched()).toBe("END");
  });

  it("does not stop on an earlier occurrence that lay wholly in unchecked text", () => {
    const m = createStopMatcher(["a", "xyz"]);
    // the "a" arrives unchecked, so only "xyz", which ends in checked text, can stop it
    const first = m.push("xa", false);
    expect(first.stopped).toBe(false);
    const next = m.push("bxyz!", true);
    expect(next.stopped).toBe(true);
    expect(first.text + next.text).toBe("xab");
    expect(m.matched()).toBe("xyz");
  });

  it("names the earliest stop string found", () => {
    const m = createStopMatcher(["b", "a"]);
    expect(m.push("xxabyy")).toEqual({ text: "xx", stopped: true });
    expect(m.matched()).toBe("a");
  });
});
