// An alpha of 0 or below silences or inverts an adapter (its scale is alpha / r), so the edge refuses it at
// publish with the other config mistakes (src/adapters/validate.ts holds the rule), storing nothing.
import { expect, it } from "vitest";
import {
  adapterFiles,
  demoBase,
  type ErrorBody,
  footprint,
  json,
  newTenant,
  publishRaw,
} from "./support/edge.ts";

it("refuses lora_alpha <= 0 and alpha_pattern values <= 0, leaving nothing behind", async () => {
  const spec = await demoBase();
  const { tenant, key } = await newTenant();
  const cases: [Record<string, unknown>, string][] = [
    [{ lora_alpha: 0 }, "lora_alpha"],
    [{ lora_alpha: -16 }, "lora_alpha"],
    [{ alpha_pattern: { q_proj: 0 } }, "alpha_pattern"],
  ];
  for (const [config, field] of cases) {
    const before = await footprint(tenant);
    const res = await publishRaw(key, "quiet", adapterFiles(spec, { seed: 9, config }));
    const body = await json<ErrorBody>(res, 400);
    expect(body.error.code).toBe("invalid_adapter");
    const text = [body.error.message, ...(body.error.details ?? [])].join("\n");
    expect(text).toContain(field);
    expect(text).toContain("must be > 0");
    expect(await footprint(tenant)).toEqual(before);
  }
});
