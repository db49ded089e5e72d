// PEFT's LoraConfig as written to adapter_config.json (huggingface/peft src/peft/tuners/lora/config.py).
// Loose: PEFT 0.21 writes ~40 keys, many null, and every release adds more. Nulls read as PEFT's defaults.
// Fields that change the base model or the forward pass beyond `x·Aᵀ·Bᵀ·s` are parsed here and refused in
// src/adapters/validate.ts, so the message can say why.
import { z } from "zod";

/** A nullable field that reads null/absent as PEFT's default. */
function orDefault<T extends z.ZodType>(schema: T, fallback: z.output<T>) {
  return schema.nullish().transform((v): z.output<T> => (v ?? fallback) as z.output<T>);
}

const stringOrList = z.union([z.string(), z.array(z.string())], {
  error: "must be a string (a regex), a list of strings, or null",
});

export const PeftLoraConfigSchema = z.looseObject({
  peft_type: z.literal("LORA", { error: 'must be "LORA" (only LoRA adapters are supported)' }),
  r: orDefault(z.number().int().positive(), 8),
  lora_alpha: orDefault(z.number().finite(), 8),
  lora_dropout: orDefault(z.number().min(0).max(1), 0),
  target_modules: stringOrList.nullish().transform((v) => v ?? null),
  exclude_modules: stringOrList.nullish().transform((v) => v ?? null),
  use_rslora: orDefault(z.boolean(), false),
  rank_pattern: orDefault(z.record(z.string(), z.number().int().positive()), {}),
  alpha_pattern: orDefault(z.record(z.string(), z.number().finite()), {}),
  layers_to_transform: z
    .union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())], {
      error: "must be a layer index, a list of layer indices, or null",
    })
    .nullish()
    .transform((v) => v ?? null),
  layers_pattern: stringOrList.nullish().transform((v) => v ?? null),
  fan_in_fan_out: orDefault(z.boolean(), false),
  bias: orDefault(z.enum(["none", "all", "lora_only"]), "none"),
  use_dora: orDefault(z.boolean(), false),
  modules_to_save: z
    .array(z.string())
    .nullish()
    .transform((v) => v ?? null),
  lora_bias: orDefault(z.boolean(), false),
  init_lora_weights: orDefault(z.union([z.boolean(), z.string()]), true),
  base_model_name_or_path: z.string().nullish(),
  task_type: z.string().nullish(),
  inference_mode: z.boolean().nullish(),
  revision: z.string().nullish(),
  peft_version: z.string().nullish(),
  target_parameters: z.array(z.string()).nullish(),
  layer_replication: z.array(z.array(z.number().int())).nullish(),
  trainable_token_indices: z.unknown().optional(),
  use_qalora: z.boolean().nullish(),
  alora_invocation_tokens: z.array(z.number().int()).nullish(),
});

export type PeftLoraConfig = z.infer<typeof PeftLoraConfigSchema>;
export type PeftLoraConfigInput = z.input<typeof PeftLoraConfigSchema>;
