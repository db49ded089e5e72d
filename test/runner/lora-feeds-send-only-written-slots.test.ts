// The resident LoRA feeds (WebGPU's; run here on the CPU through the same sessions) send only the written
// slots' values after the first upload, and the stacks they feed stay equal to the host stacks value for
// value, after writes, rewrites at another rank and clears, in the gather, dense and fused-grouped layouts
// and in float16: the session sees the same inputs, so the outputs cannot change.
import { describe, expect, it } from "vitest";
import { toFloat16 } from "../../gpu-runner/engine/float16.ts";
import { createResidentLoraFeeds, type StackSource } from "../../gpu-runner/engine/lora-feeds.ts";
import { LoraSlots, slotViewOf } from "../../gpu-runner/engine/lora-slots.ts";
import { loadHfModel } from "../../gpu-runner/engine/model/hf-model.ts";
import { groupLoraStacks, type Precision } from "../../gpu-runner/engine/onnx/fused-decoder.ts";
import {
  type DecoderSpec,
  type LinearName,
  type LoraLayout,
  linearShape,
  moduleName,
} from "../../gpu-runner/engine/onnx/llama-decoder.ts";
import { loadOrt } from "../../gpu-runner/engine/ort-backend.ts";
import type { AdapterWeights } from "../../gpu-runner/engine/types.ts";
import { createRng } from "../../src/random.ts";

const MODULES: LinearName[] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"];

function adapter(
  spec: DecoderSpec,
  seed: number,
  rank: number,
  modules: readonly LinearName[],
): AdapterWeights {
  const rng = createRng(seed);
  const values = (n: number) => Float32Array.from({ length: n }, () => rng.nextNormal());
  return {
    modules: Array.from({ length: spec.numLayers }, (_, layer) =>
      modules.map((m) => {
        const { inFeatures, outFeatures } = linearShape(spec, m);
        return {
          module: moduleName(layer, m),
          rank,
          scale: 0.5 + seed / 10,
          a: values(rank * inFeatures),
          b: values(outFeatures * rank),
        };
      }),
    ).flat(),
  };
}

const CASES: { name: string; path: "gather" | "dense"; fused: boolean; precision: Precision }[] = [
  { name: "gather layout, float32", path: "gather", fused: false, precision: "float32" },
  { name: "dense layout, float32", path: "dense", fused: false, precision: "float32" },
  { name: "fused groups, float16", path: "dense", fused: true, precision: "float16" },
];

describe("resident LoRA feeds send only the written slots", async () => {
  const model = await loadHfModel("test/fixtures/hf/tiny-llama");
  const spec = model.decoder;
  const ort = await loadOrt("native", 1);
  const request = { device: "cpu" as const, backend: "native" as const, threads: 1 };

  for (const c of CASES) {
    it(`${c.name}: stacks equal the host's after writes, rewrites and clears, sending one slot per write`, async () => {
      const layout: LoraLayout = { maxSlots: 4, maxRank: 8, modules: MODULES, path: c.path };
      const slots = new LoraSlots(spec, layout);
      const source: StackSource = c.fused
        ? {
            feeds: () => groupLoraStacks(spec, layout, slots.feeds()),
            copies: true,
            layout,
            takeWritten: () => slots.takeWritten(),
            // as engine.ts groups them: one slot's stacks grouped as a layout of one slot
            slotFeeds: (slot: number) =>
              groupLoraStacks(spec, { ...layout, maxSlots: 1 }, slots.slotFeeds(slot)),
          }
        : slots;
      const bytes = c.precision === "float16" ? 2 : 4;
      const expectSame = async (feeds: Awaited<ReturnType<typeof resident.get>>) => {
        const host = source.feeds();
        expect(Object.keys(feeds).sort()).toEqual(host.map((f) => f.name).sort());
        for (const f of host) {
          const got = await (feeds[f.name] as { getData(): Promise<unknown> }).getData();
          const want = c.precision === "float16" ? toFloat16(f.data) : f.data;
          expect(got, f.name).toEqual(want);
        }
      };
      const resident = createResidentLoraFeeds(ort, source, request, c.precision);
      try {
        for (let s = 1; s <= layout.maxSlots; s++) slots.set(s, adapter(spec, s, 8, MODULES));
        resident.changed();
        await expectSame(await resident.get());
        const full = source.feeds().reduce((sum, f) => sum + f.data.length * bytes, 0);
        expect(resident.sentBytes()).toBe(full);

        // one slot rewritten at a lower rank on fewer modules, one cleared
        slots.set(2, adapter(spec, 9, 3, ["q_proj", "v_proj"]));
        slots.set(3, null);
        resident.changed();
        await expectSame(await resident.get());
        const perSlot = source.feeds().reduce((sum, f) => {
          const v = slotViewOf(f.name, f.dims, layout);
          return sum + v.outer * v.inner * bytes;
        }, 0);
        expect(resident.sentBytes() - full).toBe(2 * perSlot);
        expect(perSlot * layout.maxSlots).toBeLessThanOrEqual(full);

        // nothing written: nothing sent
        const before = resident.sentBytes();
        await expectSame(await resident.get());
        expect(resident.sentBytes()).toBe(before);

        // the first slot and the last, the edges of each stack's slot axis
        slots.set(1, adapter(spec, 11, 8, MODULES));
        slots.set(layout.maxSlots, adapter(spec, 12, 5, ["o_proj", "up_proj"]));
        resident.changed();
        await expectSame(await resident.get());
        expect(resident.sentBytes() - before).toBe(2 * perSlot);
      } finally {
        await resident.dispose();
      }
    });
  }
  model.weights.close();
});
