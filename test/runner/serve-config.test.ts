import { describe, expect, it } from "vitest";
import { parseConfig } from "../../gpu-runner/serving/config.ts";

describe("runner command line", () => {
  it("reads flags, repeated --lora and RUNNER_TOKEN, with defaults", () => {
    const config = parseConfig(
      [
        "--model",
        "m",
        "--lora",
        "a=/x/a",
        "--lora=b=/x/b",
        "--port",
        "9000",
        "--device",
        "webgpu",
        "--max-loras",
        "4",
      ],
      { RUNNER_TOKEN: "t" },
    );
    expect(config).toMatchObject({
      model: "m",
      loras: [
        { name: "a", path: "/x/a" },
        { name: "b", path: "/x/b" },
      ],
      port: 9000,
      device: "webgpu",
      backend: "native",
      maxLoras: 4,
      maxLoraRank: 64,
      maxBatch: 32,
      maxQueue: 256,
      runnerToken: "t",
    });
    expect(parseConfig(["--model", "m"], { RUNNER_TOKEN: "" }).runnerToken).toBeNull();
  });

  it("names the flag, the rule and the value of a mistake", () => {
    expect(() => parseConfig(["--model", "m", "--port", "http"], {})).toThrow(
      '--port must be an integer in 0..65535; got "http"',
    );
    expect(() => parseConfig(["--model", "m", "--device", "tpu"], {})).toThrow(
      '--device must be one of cpu, webgpu; got "tpu"',
    );
    expect(() => parseConfig(["--model", "m", "--lora", "nodir"], {})).toThrow(
      '--lora must be <name>=<peft-dir>; got "nodir"',
    );
    expect(() => parseConfig(["--model", "m", "--lora", "a=1", "--lora", "a=2"], {})).toThrow("unique name");
    expect(() =>
      parseConfig(["--model", "m", "--max-loras", "1", "--lora", "a=1", "--lora", "b=2"], {}),
    ).toThrow("--max-loras must be at least the number of --lora adapters (2)");
  });

  it("refuses a flag it does not know, naming the closest known one", () => {
    expect(() => parseConfig(["--model", "m", "--max-lora", "4"], {})).toThrow(
      "--max-lora: not a flag of this command; did you mean --max-loras?",
    );
    expect(() => parseConfig(["--model", "m", "--lora-module", "a=b"], {})).toThrow(
      "--lora-module: not a flag of this command; did you mean --lora-modules?",
    );
    expect(() => parseConfig(["--modle", "m"], {})).toThrow("did you mean --model?");
  });

  it("refuses a missing --model before anything else", () => {
    expect(() => parseConfig([], {})).toThrow('--model must be a model directory; got ""');
  });
});
