// The sampling defaults a model directory ships in generation_config.json, as vLLM reads them with
// `--generation-config auto` (its default): temperature, top_p, top_k, repetition_penalty and min_p apply
// where a request leaves the field out. Read once at start-up and validated here, at the boundary where the
// file enters (docs/conventions.md#validation); a bad value stops the runner instead of skewing every answer.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { parseOrThrow } from "../../src/contracts/issues.ts";
import type { SamplingDefaults } from "../../src/contracts/openai.ts";
import { AppError } from "../../src/errors.ts";

export const GENERATION_CONFIG_FILE = "generation_config.json";

// transformers writes null for a value it leaves unset; the file holds many other keys we do not read
const GenerationConfigSchema = z.looseObject({
  temperature: z.number().min(0).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(-1).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
});

/**
 * vLLM takes transformers' `to_diff_dict()` of the file: values equal to GenerationConfig's own defaults are
 * dropped there. Only top_k's differs from ours (transformers 50, vLLM off), so a file saying top_k 50 leaves
 * top-k off in vLLM, and here.
 */
const TRANSFORMERS_DEFAULT_TOP_K = 50;

/** The defaults in `<modelDir>/generation_config.json`; {} when the file is absent. */
export async function readSamplingDefaults(modelDir: string): Promise<SamplingDefaults> {
  const path = join(modelDir, GENERATION_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new AppError("invalid_model", `${path}: cannot read (${(error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new AppError("invalid_model", `${path}: must be JSON (${(error as Error).message})`);
  }
  const config = parseOrThrow(GenerationConfigSchema, json, "invalid_model", path);
  const defaults: SamplingDefaults = {};
  if (config.temperature != null) defaults.temperature = config.temperature;
  if (config.top_p != null) defaults.topP = config.top_p;
  // -1 is vLLM's spelling of "off", 0 transformers' and ours
  if (config.top_k != null && config.top_k !== TRANSFORMERS_DEFAULT_TOP_K)
    defaults.topK = Math.max(0, config.top_k);
  if (config.repetition_penalty != null) defaults.repetitionPenalty = config.repetition_penalty;
  if (config.min_p != null) defaults.minP = config.min_p;
  return defaults;
}
