// src/adapters/weights.ts must not import the runner, so it restates the Engine's AdapterWeights; these
// assignments fail to type-check (npm run typecheck) the day the two drift apart.
import { expect, expectTypeOf, it } from "vitest";
import type { AdapterWeights as EngineAdapterWeights } from "../../gpu-runner/engine/types.ts";
import type { AdapterWeights } from "../../src/adapters/weights.ts";

it("src's AdapterWeights and the engine's are the same shape", () => {
  expectTypeOf<AdapterWeights>().toEqualTypeOf<EngineAdapterWeights>();
  const weights: AdapterWeights = {
    modules: [{ module: "m", rank: 1, scale: 2, a: new Float32Array(1), b: new Float32Array(1) }],
  };
  const engine: EngineAdapterWeights = weights;
  expect(engine.modules[0]?.scale).toBe(2);
});
