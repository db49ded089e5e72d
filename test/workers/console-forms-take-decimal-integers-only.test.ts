// Console forms and paths read numbers as the admin API does: decimal digits, no sign, no exponent, no hex,
// no spaces, no leading zeros. Coercion (`Number(" 1")`, `Number("0x1")`, `Number("")` = 0) would let a
// hand-made form act on a version nobody typed (docs/conventions.md#validation).
import { beforeEach, describe, expect, it } from "vitest";
import { type Browser, page, signedIn, submit, textOf } from "./support/console.ts";
import { adapterFiles, call, demoBase, json, newTenant, publish } from "./support/edge.ts";

const NOT_DECIMAL = ["1e0", "0x1", " 1", "01", "1.0", "+1", ""];

let key: string;
let b: Browser;

async function aliases(): Promise<Record<string, number>> {
  return (
    await json<{ aliases: Record<string, number> }>(
      await call("GET", "/admin/adapters/support", { token: key }),
      200,
    )
  ).aliases;
}

beforeEach(async () => {
  const spec = await demoBase();
  ({ key } = await newTenant(["admin", "infer"]));
  await publish(key, "support", adapterFiles(spec, { seed: 1 }), { alias: "prod" });
  await publish(key, "support", adapterFiles(spec, { seed: 2 }));
  b = await signedIn(key);
});

describe("console numbers", () => {
  it("refuses alias moves whose version or expected version is not a decimal integer, moving nothing", async () => {
    const { csrf } = await page(b, "/console/adapters/support");
    for (const bad of NOT_DECIMAL) {
      for (const field of ["version", "expected"] as const) {
        const form = { csrf, alias: "prod", version: "2", expected: "1", [field]: bad };
        const res = await submit(b, "/console/adapters/support/aliases", form);
        expect(res.status).toBe(400);
        expect(textOf(await res.text())).toContain(`form.${field}:`);
      }
    }
    expect(await aliases()).toEqual({ prod: 1 });
    const moved = await submit(b, "/console/adapters/support/aliases", {
      csrf,
      alias: "prod",
      version: "2",
      expected: "1",
    });
    expect(moved.status).toBe(303);
    expect(await aliases()).toEqual({ prod: 2 });
  });

  it("refuses a yank path whose version is not a decimal integer", async () => {
    const { csrf } = await page(b, "/console/adapters/support");
    for (const bad of ["1e0", "0x2", "02", "2.0"]) {
      const res = await submit(b, `/console/adapters/support/versions/${bad}/yank`, { csrf });
      expect(res.status).toBe(400);
      expect(textOf(await res.text())).toContain("param.version: must be a decimal integer");
    }
    const versions = await json<{ versions: { yankedAt: string | null }[] }>(
      await call("GET", "/admin/adapters/support", { token: key }),
      200,
    );
    expect(versions.versions.map((v) => v.yankedAt)).toEqual([null, null]);
  });

  it("refuses a stop form whose route version is not a decimal integer, leaving the route running", async () => {
    await json(
      await call("POST", "/admin/routes", {
        token: key,
        json: { name: "bot", variants: [{ name: "a", target: "support@1", weight: 10_000 }] },
      }),
      201,
    );
    const { csrf } = await page(b, "/console/experiments/bot");
    for (const bad of NOT_DECIMAL) {
      const res = await submit(b, "/console/experiments/bot/stop", { csrf, routeVersion: bad });
      expect(res.status).toBe(400);
      expect(textOf(await res.text())).toContain("form.routeVersion:");
    }
    const route = await json<{ status: string }>(await call("GET", "/admin/routes/bot", { token: key }), 200);
    expect(route.status).toBe("running");
  });

  it("refuses a compare form whose max_tokens is not a decimal integer", async () => {
    const form = await page(b, "/console/compare");
    for (const bad of ["1e3", "0x10", " 8", "8.0"]) {
      const res = await submit(b, "/console/compare", {
        csrf: form.csrf,
        prompt: "hi",
        models: ["support@1"],
        max_tokens: bad,
      });
      expect(res.status).toBe(400);
      expect(textOf(await res.text())).toContain(
        "max_tokens: must be a decimal integer (digits only, no leading zeros)",
      );
    }
  });
});
