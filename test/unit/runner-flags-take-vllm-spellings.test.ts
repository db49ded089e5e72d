// The runner's command line takes vLLM's spellings (`vllm serve` habits): --lora-modules in both forms,
// several --served-model-name, --api-key / VLLM_API_KEY beside RUNNER_TOKEN, --max-model-len with vLLM's
// suffixes, the model as a positional, and the engine flags; a vLLM flag it does not implement, and every
// combination the engine would refuse, is refused at start by name with the rule and the value.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../gpu-runner/serving/config.ts";
import { parseMaxModelLen, scanArgv } from "../../gpu-runner/serving/vllm-flags.ts";
import { AppError } from "../../src/errors.ts";

const parse = (argv: string[], env: Record<string, string | undefined> = {}) => parseConfig(argv, env);

function refusal(argv: string[], env: Record<string, string | undefined> = {}): AppError {
  try {
    parse(argv, env);
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error(`parseConfig accepted ${JSON.stringify(argv)}`);
}

describe("--lora-modules", () => {
  it("takes name=path and vLLM's JSON form, several after one flag and repeated, beside --lora", () => {
    const config = parse([
      "--model",
      "m",
      "--lora-modules",
      "a=/x/a",
      '{"name": "b", "path": "/x/b", "base_model_name": "m"}',
      "--lora",
      "c=/x/c",
      "--lora-modules=d=/x/d=with-equals",
      "--port",
      "1",
    ]);
    expect(config.loras).toEqual([
      { name: "c", path: "/x/c" },
      { name: "a", path: "/x/a" },
      { name: "b", path: "/x/b", baseModelName: "m" },
      { name: "d", path: "/x/d=with-equals" },
    ]);
    expect(config.port).toBe(1);
  });

  it("refuses a malformed value, an unknown JSON key, a duplicate and the base's own name", () => {
    expect(refusal(["--model", "m", "--lora-modules"]).message).toBe(
      '--lora-modules must be name=path or JSON {"name": ..., "path": ..., "base_model_name": ...}; got ""',
    );
    expect(refusal(["--model", "m", "--lora-modules", "=x"]).param).toBe("lora-modules");
    expect(refusal(["--model", "m", "--lora-modules", '{"name": "b"}']).message).toBe(
      "--lora-modules path: is required (string)",
    );
    expect(refusal(["--model", "m", "--lora-modules", '{"name":"b","path":"p","rank":8}']).message).toBe(
      '--lora-modules unknown field(s) "rank"',
    );
    expect(refusal(["--model", "m", "--lora-modules", "{name: b}"]).message).toMatch(
      /^--lora-modules must be name=path or JSON \(.+\); got "\{name: b\}"$/,
    );
    expect(refusal(["--model", "m", "--lora", "a=1", "--lora-modules", "a=2"]).message).toBe(
      '--lora must be a unique name per adapter (--lora and --lora-modules together); got "a"',
    );
    expect(refusal(["--model", "dir/m", "--lora-modules", "m=/x"]).message).toBe(
      '--lora-modules must be an adapter name other than the base model\'s (m); got "m"',
    );
    expect(
      refusal(["--model", "m", "--lora-modules", '{"name":"b","path":"p","base_model_name":"llama"}'])
        .message,
    ).toBe(
      '--lora-modules must be a base_model_name the base answers to (m; see --served-model-name); got "llama"',
    );
  });
});

describe("--served-model-name", () => {
  it("takes several names; without it the base keeps the model folder's name", () => {
    const config = parse(["--model", "m", "--served-model-name", "llama", "llama-8b", "--max-batch", "2"]);
    expect(config.servedModelNames).toEqual(["llama", "llama-8b"]);
    expect(config.maxBatch).toBe(2);
    expect(parse(["--model", "m"]).servedModelNames).toEqual([]);
    const named = parse(["--model", "m", "--served-model-name", "llama", "--lora-modules", "m=/x"]);
    expect(named.loras).toEqual([{ name: "m", path: "/x" }]);
  });

  it("refuses an empty or repeated name, and an adapter named like the base", () => {
    expect(refusal(["--model", "m", "--served-model-name"]).message).toBe(
      '--served-model-name must be non-empty names; got ""',
    );
    expect(refusal(["--model", "m", "--served-model-name", "a", "a"]).message).toBe(
      '--served-model-name must be distinct names; got "a"',
    );
    expect(refusal(["--model", "m", "--served-model-name", "a", "b", "--lora", "b=/x"]).message).toBe(
      '--lora must be an adapter name other than the base model\'s (a, b); got "b"',
    );
  });
});

describe("--api-key and VLLM_API_KEY", () => {
  it("set the bearer key, as RUNNER_TOKEN does; none of them serves without auth", () => {
    expect(parse(["--model", "m", "--api-key", "k1"]).runnerToken).toBe("k1");
    expect(parse(["--model", "m"], { VLLM_API_KEY: "k2" }).runnerToken).toBe("k2");
    expect(parse(["--model", "m"], { RUNNER_TOKEN: "k3" }).runnerToken).toBe("k3");
    expect(
      parse(["--model", "m", "--api-key=k4"], { RUNNER_TOKEN: "k4", VLLM_API_KEY: "k4" }).runnerToken,
    ).toBe("k4");
    expect(parse(["--model", "m"], { VLLM_API_KEY: "", RUNNER_TOKEN: "" }).runnerToken).toBeNull();
  });

  it("refuses two sources that disagree, and an empty --api-key", () => {
    const error = refusal(["--model", "m", "--api-key", "a"], { VLLM_API_KEY: "b" });
    expect(error.message).toBe(
      "--api-key: --api-key, VLLM_API_KEY are set to different keys; set one of them (or all to the same key)",
    );
    expect(error.param).toBe("api-key");
    expect(refusal(["--model", "m"], { VLLM_API_KEY: "b", RUNNER_TOKEN: "c" }).message).toContain(
      "VLLM_API_KEY, RUNNER_TOKEN are set to different keys",
    );
    expect(refusal(["--model", "m", "--api-key="]).message).toBe('--api-key must be a non-empty key; got ""');
  });
});

describe("--max-model-len", () => {
  it("reads integers and vLLM's suffixes (lowercase decimal, uppercase binary)", () => {
    expect(parse(["--model", "m", "--max-model-len", "96"]).maxModelLen).toBe(96);
    expect(parse(["--model", "m"]).maxModelLen).toBeUndefined();
    expect([
      parseMaxModelLen("2k"),
      parseMaxModelLen("2K"),
      parseMaxModelLen("1m"),
      parseMaxModelLen("1M"),
    ]).toEqual([2000, 2048, 1_000_000, 1_048_576]);
    expect(parseMaxModelLen("2.5k")).toBe(2500);
  });

  it("refuses what is not a positive whole length", () => {
    for (const raw of ["0", "-1", "auto", "1.5", "2kk", ""]) {
      expect(refusal(["--model", "m", `--max-model-len=${raw}`]).message).toBe(
        `--max-model-len must be an integer >= 1, or one with k, K, m or M (2k = 2000, 2K = 2048); got ${JSON.stringify(raw)}`,
      );
    }
  });
});

describe("--graph, --precision, --quantize", () => {
  it("default to the device's graph and the engine's precision; fused takes float16 and int4", () => {
    // undefined: the engine picks (fused on WebGPU, primitive on CPU: engine.ts defaultGraph)
    expect(parse(["--model", "m"])).toMatchObject({
      graph: undefined,
      precision: undefined,
      quantize: undefined,
    });
    expect(refusal(["--model", "m", "--precision", "float16"]).message).toContain("--graph primitive");
    expect(parse(["--model", "m", "--device", "webgpu", "--precision", "float16"]).precision).toBe("float16");
    expect(
      parse(["--model", "m", "--graph", "fused", "--precision", "float16", "--quantize", "int4"]),
    ).toMatchObject({ graph: "fused", precision: "float16", quantize: "int4" });
    expect(parse(["--model", "m", "--precision", "float32"]).precision).toBe("float32");
  });

  it("refuses values and combinations the engine refuses, by flag", () => {
    expect(refusal(["--model", "m", "--graph", "onnx"]).message).toBe(
      '--graph must be one of primitive, fused; got "onnx"',
    );
    expect(refusal(["--model", "m", "--precision", "bfloat16"]).message).toBe(
      '--precision must be one of float32, float16; got "bfloat16"',
    );
    expect(refusal(["--model", "m", "--graph", "fused", "--quantize", "int8"]).message).toBe(
      '--quantize must be one of int4; got "int8"',
    );
    expect(refusal(["--model", "m", "--precision", "float16"]).message).toBe(
      '--precision must be float32 with --graph primitive (float16 needs --graph fused); got "float16"',
    );
    expect(refusal(["--model", "m", "--quantize", "int4"]).message).toBe(
      '--quantize must be absent with --graph primitive (int4 needs --graph fused); got "int4"',
    );
  });
});

describe("vLLM's command-line habits", () => {
  it("takes the model as the one positional argument, and --enable-lora (adapters are always on)", () => {
    expect(parse(["/models/m", "--enable-lora", "--max-loras", "2"])).toMatchObject({
      model: "/models/m",
      maxLoras: 2,
    });
    expect(refusal(["a", "b"]).message).toBe(
      '--model must be given once (as --model <dir> or as the one positional argument); got ["a","b"]',
    );
    expect(refusal(["a", "--model", "b"]).param).toBe("model");
    expect(refusal(["--model", "m", "--enable-lora=false"]).message).toBe(
      '--enable-lora must be given without a value (adapters cannot be turned off); got "false"',
    );
  });

  it("refuses every vLLM flag it does not implement, long or short, saying what to use instead", () => {
    const error = refusal(["--model", "m", "--tensor-parallel-size", "2", "-pp", "2", "--dtype", "half"]);
    expect(error.details).toEqual([
      "--tensor-parallel-size: a vLLM flag this runner does not implement (a runner drives one device: start more runners and let the edge spread adapters)",
      "--dtype: a vLLM flag this runner does not implement (use --precision float32|float16 (float16 needs --graph fused))",
      "-pp: a vLLM flag this runner does not implement (a runner drives one device: start more runners and let the edge spread adapters)",
    ]);
    expect(error.param).toBe("argv");
    expect(refusal(["--model", "m", "--max-num-seqs", "8"]).message).toContain("use --max-batch");
    expect(refusal(["--model", "m", "--gpu-memory-utilization=0.9"]).message).toContain("a vLLM flag");
    expect(refusal(["--model", "m", "-x"]).message).toBe("-x: not a flag of this command");
    expect(refusal(["--model", "m", "--served-model-nam", "a"]).message).toBe(
      "--served-model-nam: not a flag of this command; did you mean --served-model-name?",
    );
  });

  it("reads argv as argparse does: booleans take no value, multi-value flags stop at the next flag", () => {
    const scanned = scanArgv(
      [
        "pos",
        "--enable-lora",
        "--served-model-name",
        "a",
        "b",
        "--port",
        "-1",
        "--no-public-probes",
        "--",
        "x",
      ],
      { "enable-lora": { type: "boolean" }, "public-probes": { type: "string" } },
    );
    expect(Object.fromEntries(scanned.values)).toEqual({
      "enable-lora": ["true"],
      "served-model-name": ["a", "b"],
      port: ["-1"],
      "public-probes": ["false"],
    });
    expect(scanned.positionals).toEqual(["pos", "x"]);
    expect(scanned.flags).toEqual(["enable-lora", "served-model-name", "port", "no-public-probes"]);
  });
});
