// Every boundary of the engine refuses bad input with an AppError naming the field, the rule and the value,
// and a refused adapter leaves its slot as it was.
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../gpu-runner/engine/engine.ts";
import type { AdapterWeights, Engine } from "../../gpu-runner/engine/types.ts";
import { writeSyntheticModel } from "../../scripts/bench/synthetic-model.ts";
import { AppError } from "../../src/errors.ts";
import { TINY_MODELS, writeTinyModels } from "../helpers/tiny-models.ts";

let root = "";
let engine: Engine;

beforeAll(async () => {
  root = writeTinyModels();
  engine = await createEngine({ modelDir: join(root, "tiny-llama"), maxSlots: 2, maxRank: 4 });
});
afterAll(async () => {
  await engine.dispose();
  rmSync(root, { recursive: true, force: true });
});

function adapter(
  rank: number,
  module = "model.layers.0.self_attn.q_proj",
  aLength = rank * 64,
): AdapterWeights {
  return {
    modules: [
      {
        module,
        rank,
        scale: 1,
        a: new Float32Array(aLength).fill(0.5),
        b: new Float32Array(64 * rank).fill(0.5),
      },
    ],
  };
}

async function rejection(fn: () => unknown): Promise<AppError> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error("expected a rejection");
}

describe("the engine refuses", () => {
  it("slots outside 1..maxSlots, naming the range and the value", async () => {
    expect((await rejection(() => engine.setSlot(3, adapter(2)))).message).toBe("slot must be 1..2; got 3");
    expect((await rejection(() => engine.createSequence(-1))).message).toBe("slot must be 0..2; got -1");
  });

  it("adapters that do not fit, naming the module, the rule and the value, and keeps the slot as it was", async () => {
    const tokens = [5, 6, 7];
    const logitsOf = async () => {
      const seq = engine.createSequence(1);
      const [l] = await engine.step([{ seq, tokens }]);
      engine.release(seq);
      return Array.from(l as Float32Array);
    };
    engine.setSlot(1, adapter(2));
    const before = await logitsOf();
    const tooWide = await rejection(() => engine.setSlot(1, adapter(8)));
    expect(tooWide.code).toBe("invalid_adapter");
    expect(tooWide.message).toContain("model.layers.0.self_attn.q_proj: rank must be 1..4 (max rank); got 8");
    const badShape = await rejection(() => engine.setSlot(1, adapter(2, undefined, 10)));
    expect(badShape.details).toContain(
      "model.layers.0.self_attn.q_proj: A must be [2, 64] (128 values); got 10",
    );
    const unknown = await rejection(() => engine.setSlot(1, adapter(2, "model.layers.9.self_attn.q_proj")));
    expect(unknown.message).toContain(
      "model.layers.9.self_attn.q_proj: not an adaptable linear of this engine",
    );
    expect(await logitsOf()).toEqual(before);
  });

  it("bad step rows: unknown sequences, empty or out-of-vocabulary tokens, sequences past max positions", async () => {
    const seq = engine.createSequence(0);
    expect((await rejection(() => engine.step([{ seq: 999, tokens: [1] }]))).message).toBe(
      "rows[0].seq: unknown sequence 999",
    );
    expect((await rejection(() => engine.step([{ seq, tokens: [] }]))).message).toBe(
      "rows[0].tokens: must not be empty",
    );
    expect((await rejection(() => engine.step([{ seq, tokens: [1, 256] }]))).message).toBe(
      "rows[0].tokens: ids must be 0..255; got 256",
    );
    const long = Array.from({ length: 129 }, () => 1);
    expect((await rejection(() => engine.step([{ seq, tokens: long }]))).message).toBe(
      "rows[0]: sequence length must be <= 128 (max positions); got 129",
    );
    expect((await rejection(() => engine.step([]))).message).toBe("step needs at least one row");
    engine.release(seq);
  });
});

describe("model directories", () => {
  it("mistral's sliding window does not cap the context: past it, positions attend to the last 32 only", async () => {
    const base = TINY_MODELS["tiny-mistral"] as (typeof TINY_MODELS)[string];
    writeSyntheticModel(join(root, "windowed"), { ...base, extraConfig: { sliding_window: 32 } });
    writeSyntheticModel(join(root, "unwindowed"), base);
    const windowed = await createEngine({ modelDir: join(root, "windowed"), maxSlots: 0, maxRank: 1 });
    const full = await createEngine({ modelDir: join(root, "unwindowed"), maxSlots: 0, maxRank: 1 });
    expect(windowed.info.maxPositions).toBe(128);
    const tokens = Array.from({ length: 40 }, (_, i) => (i * 37) % 256);
    const logitsAt = async (engine: Engine, length: number) => {
      const seq = engine.createSequence(0);
      const [logits] = await engine.step([{ seq, tokens: tokens.slice(0, length) }]);
      engine.release(seq);
      return logits as Float32Array;
    };
    // Up to the window both attend to everything; one position past it the window drops the first token.
    expect(await logitsAt(windowed, 32)).toEqual(await logitsAt(full, 32));
    expect(await logitsAt(windowed, 33)).not.toEqual(await logitsAt(full, 33));
    // The fused graph has no window mask, so it stops where full attention still equals the model's.
    const fused = await createEngine({
      modelDir: join(root, "windowed"),
      maxSlots: 0,
      maxRank: 1,
      graph: "fused",
    });
    expect(fused.info.maxPositions).toBe(32);
    await Promise.all([windowed.dispose(), full.dispose(), fused.dispose()]);
  });

  it("a missing tensor is named, before any graph is built", async () => {
    const dir = join(root, "broken");
    writeSyntheticModel(dir, { ...(TINY_MODELS["tiny-qwen2"] as (typeof TINY_MODELS)[string]) });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ ...config, model_type: "llama", attention_bias: true, num_hidden_layers: 3 }),
    );
    const error = await rejection(() => createEngine({ modelDir: dir, maxSlots: 0, maxRank: 1 }));
    expect(error.code).toBe("invalid_model");
    expect(error.details).toContain('tensor "model.layers.2.self_attn.q_proj.weight": missing');
  });

  it("the fused graph and LoRA slots are refused by name for what a family does not have", async () => {
    const gemma2 = join(import.meta.dirname, "..", "fixtures", "hf", "tiny-gemma2");
    const fused = await rejection(() =>
      createEngine({ modelDir: gemma2, maxSlots: 0, maxRank: 1, graph: "fused" }),
    );
    expect([fused.code, fused.param]).toEqual(["invalid_request", "graph"]);
    expect(fused.message).toBe(
      'graph must be "primitive" for model_type "gemma2" (the fused graph computes llama, mistral and qwen2 only); got "fused"',
    );
    const phi3 = join(import.meta.dirname, "..", "fixtures", "hf", "tiny-phi3");
    const modules = await rejection(() =>
      createEngine({ modelDir: phi3, maxSlots: 1, maxRank: 4, loraModules: ["qkv_proj", "q_proj"] }),
    );
    expect([modules.code, modules.param]).toEqual(["invalid_request", "loraModules"]);
    expect(modules.message).toBe(
      'loraModules must name linears of model_type "phi3" (qkv_proj, o_proj, gate_up_proj, down_proj); got "q_proj"',
    );
  });

  it("config fields a family's math cannot honour are refused by name", async () => {
    const dir = join(root, "gemma-bidirectional");
    const source = join(import.meta.dirname, "..", "fixtures", "hf", "tiny-gemma3");
    cpSync(source, dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, use_bidirectional_attention: true }));
    const bidirectional = await rejection(() => createEngine({ modelDir: dir, maxSlots: 0, maxRank: 1 }));
    expect(bidirectional.message).toBe(
      "config.json use_bidirectional_attention: must be false (causal decoding); got true (not supported)",
    );
    const layers = [...config.layer_types.slice(0, 2), "chunked_attention"];
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, layer_types: layers }));
    const chunked = await rejection(() => createEngine({ modelDir: dir, maxSlots: 0, maxRank: 1 }));
    expect(chunked.message).toBe(
      'config.json layer_types[2]: must be one of full_attention, sliding_attention; got "chunked_attention" (not supported)',
    );
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, hidden_activation: "relu" }));
    const relu = await rejection(() => createEngine({ modelDir: dir, maxSlots: 0, maxRank: 1 }));
    expect(relu.message).toBe(
      'config.json hidden_activation: must be "gelu_pytorch_tanh" for this model_type; got "relu" (not supported)',
    );
  });

  it("an unsupported rope type is named with the supported ones", async () => {
    const dir = join(root, "yarn");
    writeSyntheticModel(dir, {
      ...(TINY_MODELS["tiny-llama"] as (typeof TINY_MODELS)[string]),
      ropeScaling: { rope_type: "yarn", factor: 4 },
    });
    const error = await rejection(() => createEngine({ modelDir: dir, maxSlots: 0, maxRank: 1 }));
    expect(error.message).toBe(
      'config.json rope_scaling.rope_type: must be one of default, linear, llama3, longrope, su; got "yarn" (not supported)',
    );
  });
});
