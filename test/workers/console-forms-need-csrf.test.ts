import { beforeEach, describe, expect, it } from "vitest";
import { adapterFiles, call, demoBase, json, newTenant, publish } from "./support/edge.ts";
import { type Browser, page, signedIn, submit, textOf } from "./support/console.ts";

let key: string;
let b: Browser;

async function yankedAt(version: number): Promise<string | null> {
  const adapter = await json<{ versions: { version: number; yankedAt: string | null }[] }>(
    await call("GET", "/admin/adapters/support", { token: key }),
    200,
  );
  return adapter.versions.find((v) => v.version === version)?.yankedAt ?? null;
}

beforeEach(async () => {
  const spec = await demoBase();
  ({ key } = await newTenant(["admin"]));
  await publish(key, "support", adapterFiles(spec, { seed: 1 }), { alias: "prod" });
  await publish(key, "support", adapterFiles(spec, { seed: 2 }));
  b = await signedIn(key);
});

describe("console forms", () => {
  it("refuse a post without the session's CSRF token, with another session's token, or from another origin", async () => {
    const yank = "/console/adapters/support/versions/2/yank";
    const missing = await submit(b, yank, {});
    expect(missing.status).toBe(403);
    expect(textOf(await missing.text())).toContain("csrf: the form's token does not belong to this session");

    const other = await signedIn(key);
    const foreign = (await page(other, "/console/adapters/support")).csrf;
    expect((await submit(b, yank, { csrf: foreign })).status).toBe(403);

    const { csrf } = await page(b, "/console/adapters/support");
    const crossSite = await submit(b, yank, { csrf }, { origin: "https://evil.example" });
    expect(crossSite.status).toBe(403);
    expect(textOf(await crossSite.text())).toContain("got Origin https://evil.example");
    expect(await yankedAt(2)).toBeNull();

    const ok = await submit(b, yank, { csrf });
    expect([ok.status, ok.headers.get("location")]).toEqual([303, "/console/adapters/support?notice=yanked"]);
    expect(await yankedAt(2)).not.toBeNull();
  });

  it("refuse a post with no session at all, without touching anything", async () => {
    const res = await submit({ cookies: new Map() }, "/console/adapters/support/versions/2/yank", {
      csrf: "0".repeat(64),
    });
    expect(res.status).toBe(401);
    expect(await yankedAt(2)).toBeNull();
  });

  it("apply the admin API's checks: no yank while an alias points at the version, alias moves compare-and-set", async () => {
    const { csrf } = await page(b, "/console/adapters/support");
    const refused = await submit(b, "/console/adapters/support/versions/1/yank", { csrf });
    expect(refused.status).toBe(409);
    expect(textOf(await refused.text())).toContain(
      "support@1 cannot be yanked while aliases point at it: prod; move them first",
    );
    expect(await yankedAt(1)).toBeNull();

    const moved = await submit(b, "/console/adapters/support/aliases", {
      csrf,
      alias: "prod",
      version: "2",
      expected: "1",
    });
    expect(moved.status).toBe(303);
    // The same form again is stale: prod is no longer at 1.
    const stale = await submit(b, "/console/adapters/support/aliases", {
      csrf,
      alias: "prod",
      version: "2",
      expected: "1",
    });
    expect(stale.status).toBe(409);
    expect(textOf(await stale.text())).toContain("alias support@prod is at version 2; expected version 1");

    const bad = await submit(b, "/console/adapters/support/aliases", {
      csrf,
      alias: "Bad Alias",
      version: "2",
      expected: "none",
    });
    expect(bad.status).toBe(400);
    expect(textOf(await bad.text())).toMatch(/form\.alias: .*got "Bad Alias"/);
  });
});
