// The Hugging Face reference fixtures (test/fixtures/README.md) are made on another machine and committed;
// parity tests trust them. This checks every one keeps its promises: files parse, shapes follow the config,
// adapters are PEFT-shaped, and the expected outputs are finite, complete and self-consistent.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { readSafetensors, type SafetensorsFile, tensorBytes, toFloat32 } from "../../src/safetensors.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const VOCAB = 256;

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(`${FIXTURES}${path}`, "utf8"));
}

function readTensors(path: string): SafetensorsFile {
  return readSafetensors(new Uint8Array(readFileSync(`${FIXTURES}${path}`)), path);
}

function values(file: SafetensorsFile, name: string): Float32Array {
  const info = file.tensors.find((t) => t.name === name);
  if (!info) throw new Error(`${name} is missing`);
  return toFloat32(info.dtype, tensorBytes(file, info), name);
}

const MODELS = {
  "tiny-llama": {
    type: "llama",
    dtype: "F32",
    tied: false,
    headDim: 16,
    biases: false,
    rope: "default",
    theta: 1e4,
  },
  "tiny-llama3": {
    type: "llama",
    dtype: "BF16",
    tied: true,
    headDim: 32,
    biases: false,
    rope: "llama3",
    theta: 5e5,
  },
  "tiny-qwen2": {
    type: "qwen2",
    dtype: "F32",
    tied: true,
    headDim: 16,
    biases: true,
    rope: "default",
    theta: 1e6,
  },
} as const;
type ModelPromise = (typeof MODELS)[keyof typeof MODELS];

const ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const ADAPTERS = {
  qv: { r: 8, alpha: 16, rslora: false, targets: ["q_proj", "v_proj"], ranks: {}, alphas: {} },
  all7: { r: 4, alpha: 8, rslora: true, targets: ALL7, ranks: {}, alphas: {} },
  patterns: {
    r: 8,
    alpha: 8,
    rslora: false,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj"],
    ranks: { k_proj: 4, "layers.1.self_attn.o_proj": 2 },
    alphas: { v_proj: 32 },
  },
} as const;

const Config = z.looseObject({
  model_type: z.string(),
  hidden_size: z.literal(64),
  intermediate_size: z.literal(128),
  num_hidden_layers: z.literal(2),
  num_attention_heads: z.literal(4),
  num_key_value_heads: z.literal(2),
  vocab_size: z.literal(VOCAB),
  max_position_embeddings: z.literal(128),
  rms_norm_eps: z.literal(1e-6),
  tie_word_embeddings: z.boolean(),
  head_dim: z.number().int().optional(),
});
type Config = z.infer<typeof Config>;

// transformers 5 writes `rope_parameters` (theta inside); 4.x wrote `rope_theta` and `rope_scaling`.
const Rope = z.looseObject({ rope_type: z.string(), rope_theta: z.number() });
function ropeOf(raw: Record<string, unknown>): z.infer<typeof Rope> {
  if (raw.rope_parameters !== undefined) return Rope.parse(raw.rope_parameters);
  const scaling = (raw.rope_scaling ?? { rope_type: "default" }) as Record<string, unknown>;
  return Rope.parse({ ...scaling, rope_theta: raw.rope_theta });
}

function expectedShapes(config: Config, promise: ModelPromise): Map<string, number[]> {
  const h = config.hidden_size;
  const q = config.num_attention_heads * promise.headDim;
  const kv = config.num_key_value_heads * promise.headDim;
  const i = config.intermediate_size;
  const shapes = new Map<string, number[]>([
    ["model.embed_tokens.weight", [VOCAB, h]],
    ["model.norm.weight", [h]],
  ]);
  if (!promise.tied) shapes.set("lm_head.weight", [VOCAB, h]);
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    const layer: [string, number[]][] = [
      ["input_layernorm.weight", [h]],
      ["post_attention_layernorm.weight", [h]],
      ["self_attn.q_proj.weight", [q, h]],
      ["self_attn.k_proj.weight", [kv, h]],
      ["self_attn.v_proj.weight", [kv, h]],
      ["self_attn.o_proj.weight", [h, q]],
      ["mlp.gate_proj.weight", [i, h]],
      ["mlp.up_proj.weight", [i, h]],
      ["mlp.down_proj.weight", [h, i]],
    ];
    if (promise.biases) {
      layer.push(
        ["self_attn.q_proj.bias", [q]],
        ["self_attn.k_proj.bias", [kv]],
        ["self_attn.v_proj.bias", [kv]],
      );
    }
    for (const [name, shape] of layer) shapes.set(`${p}.${name}`, shape);
  }
  return shapes;
}

const AdapterConfig = z.looseObject({
  peft_type: z.literal("LORA"),
  r: z.number().int(),
  lora_alpha: z.number(),
  use_rslora: z.boolean(),
  use_dora: z.literal(false),
  bias: z.literal("none"),
  modules_to_save: z.null(),
  target_modules: z.array(z.string()),
  rank_pattern: z.record(z.string(), z.number()),
  alpha_pattern: z.record(z.string(), z.number()),
});

// As PEFT does it: a pattern key matches a module when `(.*\.)?(key)$` matches its name.
function patterned(module: string, base: number, pattern: Record<string, number>): number {
  let value = base;
  for (const [key, v] of Object.entries(pattern)) if (new RegExp(`(.*\\.)?(${key})$`).test(module)) value = v;
  return value;
}

const PEFT_KEY =
  /^base_model\.model\.(model\.layers\.\d+\.(?:self_attn|mlp)\.\w+_proj)\.lora_([AB])\.weight$/;

const Case = z.strictObject({
  adapter: z.enum(["qv", "all7", "patterns"]).nullable(),
  input_ids: z
    .array(
      z
        .int()
        .min(0)
        .max(VOCAB - 1),
    )
    .min(1),
  last_logits: z.array(z.number()).length(VOCAB),
  greedy: z
    .array(
      z
        .int()
        .min(0)
        .max(VOCAB - 1),
    )
    .length(8),
});
type Case = z.infer<typeof Case>;
const Expected = z.strictObject({
  versions: z.strictObject({
    torch: z.string().min(1),
    transformers: z.string().min(1),
    peft: z.string().min(1),
  }),
  cases: z.array(Case),
  mixed_batch: z.array(Case).min(2),
});

function argmax(xs: number[]): number {
  return xs.reduce((best, x, i) => (x > (xs[best] as number) ? i : best), 0);
}

function std(xs: number[]): number {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
}

function checkCase(c: Case): void {
  expect(c.last_logits.every(Number.isFinite)).toBe(true);
  expect(std(c.last_logits)).toBeGreaterThan(0.3);
  // The first greedy token is read off the same logits the case reports.
  expect(c.greedy[0]).toBe(argmax(c.last_logits));
}

describe.each(Object.entries(MODELS))("fixture %s", (model, promise) => {
  const dir = `hf/${model}/`;
  const raw = readJson(`${dir}config.json`) as Record<string, unknown>;
  const config = Config.parse(raw);

  it("has the promised config", () => {
    expect(config.model_type).toBe(promise.type);
    expect(config.tie_word_embeddings).toBe(promise.tied);
    expect(config.head_dim ?? config.hidden_size / config.num_attention_heads).toBe(promise.headDim);
    const rope = ropeOf(raw);
    expect([rope.rope_type, rope.rope_theta]).toEqual([promise.rope, promise.theta]);
    if (promise.rope === "llama3") {
      expect(rope).toMatchObject({ factor: 8, low_freq_factor: 1, high_freq_factor: 4 });
      expect(rope).toMatchObject({ original_max_position_embeddings: 64 });
    }
    expect(readJson(`${dir}generation_config.json`)).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
  });

  it("stores exactly the tensors the config implies, finite, in the promised dtype", () => {
    const file = readTensors(`${dir}model.safetensors`);
    const want = expectedShapes(config, promise);
    expect(Object.fromEntries(file.tensors.map((t) => [t.name, t.shape]))).toEqual(Object.fromEntries(want));
    for (const t of file.tensors) {
      expect(t.dtype, t.name).toBe(promise.dtype);
      expect(values(file, t.name).every(Number.isFinite), t.name).toBe(true);
    }
    // Norm weights were randomised so a reader that skips them cannot pass parity.
    expect(values(file, "model.norm.weight").some((v) => Math.abs(v - 1) > 0.01)).toBe(true);
  });

  describe.each(Object.entries(ADAPTERS))("adapter %s", (adapter, want) => {
    const adir = `${dir}adapters/${adapter}/`;
    const base = readTensors(`${dir}model.safetensors`);

    it("has the promised adapter_config.json", () => {
      const cfg = AdapterConfig.parse(readJson(`${adir}adapter_config.json`));
      expect([cfg.r, cfg.lora_alpha, cfg.use_rslora]).toEqual([want.r, want.alpha, want.rslora]);
      expect(new Set(cfg.target_modules)).toEqual(new Set(want.targets));
      expect([cfg.rank_pattern, cfg.alpha_pattern]).toEqual([want.ranks, want.alphas]);
    });

    it("holds PEFT-shaped, non-zero A and B for every targeted module", () => {
      const file = readTensors(`${adir}adapter_model.safetensors`);
      const seen = new Set<string>();
      for (const t of file.tensors) {
        const match = PEFT_KEY.exec(t.name);
        expect(match, t.name).not.toBeNull();
        const [, module = "", which] = match ?? [];
        const [out, inp] = base.tensors.find((b) => b.name === `${module}.weight`)?.shape ?? [];
        const r = patterned(module, want.r, want.ranks);
        // A: [r, in], B: [out, r]
        expect(t.shape, t.name).toEqual(which === "A" ? [r, inp] : [out, r]);
        expect(t.dtype).toBe("F32");
        const v = values(file, t.name);
        expect(v.every(Number.isFinite) && v.some((x) => x !== 0), t.name).toBe(true);
        seen.add(module);
      }
      expect(file.tensors.length).toBe(2 * seen.size);
      expect(seen.size).toBe(config.num_hidden_layers * want.targets.length);
      expect([...seen].every((m) => want.targets.some((target) => m.endsWith(`.${target}`)))).toBe(true);
    });
  });

  it("has expected.json with every adapter x prompt, finite logits and consistent greedy tokens", () => {
    const expected = Expected.parse(readJson(`${dir}expected.json`));
    const byAdapter = new Map<string | null, Case[]>();
    for (const c of expected.cases) {
      checkCase(c);
      byAdapter.set(c.adapter, [...(byAdapter.get(c.adapter) ?? []), c]);
    }
    expect([...byAdapter.keys()].sort()).toEqual(["all7", "patterns", "qv", null].sort());
    const basePrompts = (byAdapter.get(null) ?? []).map((c) => c.input_ids);
    expect(basePrompts.map((p) => p.length)).toEqual([5, 17]);
    for (const [adapter, cases] of byAdapter) {
      expect(
        cases.map((c) => c.input_ids),
        String(adapter),
      ).toEqual(basePrompts);
      if (adapter === null) continue;
      cases.forEach((c, i) => {
        const base = (byAdapter.get(null) ?? [])[i]?.last_logits ?? [];
        const delta = Math.max(...c.last_logits.map((x, j) => Math.abs(x - (base[j] as number))));
        expect(delta, `${adapter} must change the logits`).toBeGreaterThan(1e-2);
      });
    }
  });

  it("has a mixed batch of equal-length rows over base and several adapters", () => {
    const { mixed_batch: rows } = Expected.parse(readJson(`${dir}expected.json`));
    for (const row of rows) checkCase(row);
    expect(new Set(rows.map((r) => r.input_ids.length)).size).toBe(1);
    expect(rows.some((r) => r.adapter === null)).toBe(true);
    expect(new Set(rows.map((r) => r.adapter).filter((a) => a !== null)).size).toBeGreaterThanOrEqual(2);
  });
});
