// Optimizers over flat Float32Arrays (the LoRA tensors are small: a step here costs microseconds beside the
// graph), with torch's update rules so that results compare with PEFT + torch.optim runs.
import { z } from "zod";

export const OptimizerConfigSchema = z.strictObject({
  kind: z.enum(["adamw", "sgd"]).default("adamw"),
  lr: z.number().positive().default(2e-4),
  weightDecay: z.number().min(0).default(0),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  eps: z.number().positive().default(1e-8),
  momentum: z.number().min(0).lt(1).default(0),
  warmupSteps: z.number().int().min(0).default(0),
  schedule: z.enum(["constant", "linear", "cosine"]).default("linear"),
  /** Global L2 norm cap over all gradients; 0 turns clipping off. */
  maxGradNorm: z.number().min(0).default(1),
});
export type OptimizerConfig = z.infer<typeof OptimizerConfigSchema>;

/** transformers' get_scheduler: linear warm-up from 0, then constant, linear or cosine decay to 0. */
export function learningRate(c: OptimizerConfig, step: number, totalSteps: number): number {
  if (step < c.warmupSteps) return (c.lr * step) / Math.max(1, c.warmupSteps);
  if (c.schedule === "constant") return c.lr;
  const progress = (step - c.warmupSteps) / Math.max(1, totalSteps - c.warmupSteps);
  if (c.schedule === "linear") return c.lr * Math.max(0, 1 - progress);
  return c.lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}

/** torch.nn.utils.clip_grad_norm_: scales every gradient by max/(norm + 1e-6) when the norm exceeds max. */
export function clipGradients(grads: Float32Array[], maxNorm: number): number {
  let sum = 0;
  for (const g of grads) for (const v of g) sum += v * v;
  const norm = Math.sqrt(sum);
  if (maxNorm > 0 && norm > maxNorm) {
    const k = maxNorm / (norm + 1e-6);
    for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = (g[i] as number) * k;
  }
  return norm;
}

export interface OptimizerState {
  step: number;
  /** AdamW first/second moments or SGD momentum buffers, one per parameter tensor. */
  m: Float32Array[];
  v: Float32Array[];
}

export function createOptimizerState(params: Float32Array[]): OptimizerState {
  return {
    step: 0,
    m: params.map((p) => new Float32Array(p.length)),
    v: params.map((p) => new Float32Array(p.length)),
  };
}

function adamw(
  c: OptimizerConfig,
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  lr: number,
  t: number,
) {
  const bc1 = 1 - c.beta1 ** t;
  const bc2 = 1 - c.beta2 ** t;
  const stepSize = lr / bc1;
  const decay = 1 - lr * c.weightDecay;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] as number;
    const mi = c.beta1 * (m[i] as number) + (1 - c.beta1) * gi;
    const vi = c.beta2 * (v[i] as number) + (1 - c.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = (p[i] as number) * decay - (stepSize * mi) / (Math.sqrt(vi / bc2) + c.eps);
  }
}

function sgd(
  c: OptimizerConfig,
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  lr: number,
  first: boolean,
) {
  for (let i = 0; i < p.length; i++) {
    let d = (g[i] as number) + c.weightDecay * (p[i] as number);
    if (c.momentum > 0) {
      d = first ? d : c.momentum * (m[i] as number) + d;
      m[i] = d;
    }
    p[i] = (p[i] as number) - lr * d;
  }
}

/** One update of every tensor in place at learning rate `lr`. */
export function optimizerStep(
  c: OptimizerConfig,
  s: OptimizerState,
  params: Float32Array[],
  grads: Float32Array[],
  lr: number,
): void {
  s.step += 1;
  params.forEach((p, k) => {
    const g = grads[k] as Float32Array;
    if (c.kind === "adamw") adamw(c, p, g, s.m[k] as Float32Array, s.v[k] as Float32Array, lr, s.step);
    else sgd(c, p, g, s.m[k] as Float32Array, lr, s.step === 1);
  });
}
