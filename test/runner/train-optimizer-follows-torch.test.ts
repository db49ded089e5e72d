// Optimizer arithmetic against torch's documented update rules, worked by hand for two steps, and the
// transformers schedules at their turning points.
import { describe, expect, it } from "vitest";
import {
  clipGradients,
  createOptimizerState,
  learningRate,
  OptimizerConfigSchema,
  optimizerStep,
} from "../../gpu-runner/training/optimizer.ts";

describe("optimizer", () => {
  it("AdamW matches torch.optim.AdamW over two steps", () => {
    const c = OptimizerConfigSchema.parse({ kind: "adamw", lr: 0.1, weightDecay: 0.01 });
    const p = Float32Array.from([1, -2]);
    const s = createOptimizerState([p]);
    const g1 = Float32Array.from([0.5, -1]);
    const g2 = Float32Array.from([0.25, 2]);
    optimizerStep(c, s, [p], [g1], 0.1);
    optimizerStep(c, s, [p], [g2], 0.1);
    // By hand: p ← p(1 − lr·wd); m, v moments; p ← p − lr/(1−β1ᵗ) · m / (√(v/(1−β2ᵗ)) + ε).
    const expected = [1, -2].map((p0, i) => {
      const g = [
        [0.5, -1],
        [0.25, 2],
      ];
      let x = p0;
      let m = 0;
      let v = 0;
      for (let t = 1; t <= 2; t++) {
        const gi = (g[t - 1] as number[])[i] as number;
        x *= 1 - 0.1 * 0.01;
        m = 0.9 * m + 0.1 * gi;
        v = 0.999 * v + 0.001 * gi * gi;
        x -= ((0.1 / (1 - 0.9 ** t)) * m) / (Math.sqrt(v / (1 - 0.999 ** t)) + 1e-8);
      }
      return x;
    });
    expect(p[0]).toBeCloseTo(expected[0] as number, 6);
    expect(p[1]).toBeCloseTo(expected[1] as number, 6);
    expect(s.step).toBe(2);
  });

  it("SGD with momentum starts its buffer from the first gradient (torch)", () => {
    const c = OptimizerConfigSchema.parse({ kind: "sgd", lr: 0.5, momentum: 0.9 });
    const p = Float32Array.from([1]);
    const s = createOptimizerState([p]);
    optimizerStep(c, s, [p], [Float32Array.from([2])], 0.5);
    expect(p[0]).toBeCloseTo(0, 6);
    optimizerStep(c, s, [p], [Float32Array.from([1])], 0.5);
    expect(p[0]).toBeCloseTo(-0.5 * (0.9 * 2 + 1), 6);
  });

  it("schedules: warm-up, then linear or cosine decay to zero", () => {
    const linear = OptimizerConfigSchema.parse({ lr: 1, warmupSteps: 10, schedule: "linear" });
    expect(learningRate(linear, 0, 110)).toBe(0);
    expect(learningRate(linear, 5, 110)).toBe(0.5);
    expect(learningRate(linear, 10, 110)).toBe(1);
    expect(learningRate(linear, 60, 110)).toBe(0.5);
    expect(learningRate(linear, 110, 110)).toBe(0);
    const cosine = OptimizerConfigSchema.parse({ lr: 1, schedule: "cosine" });
    expect(learningRate(cosine, 50, 100)).toBeCloseTo(0.5, 12);
    expect(learningRate(cosine, 100, 100)).toBeCloseTo(0, 12);
  });

  it("clipping scales every gradient by max/(norm + 1e-6), only above the cap", () => {
    const g = [Float32Array.from([3]), Float32Array.from([4])];
    expect(clipGradients(g, 1)).toBe(5);
    expect(g[0]?.[0]).toBeCloseTo(3 / (5 + 1e-6), 6);
    const small = [Float32Array.from([0.3, 0.4])];
    expect(clipGradients(small, 1)).toBeCloseTo(0.5, 6);
    expect(small[0]?.[0]).toBeCloseTo(0.3, 7);
  });
});
