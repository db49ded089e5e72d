import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { sha256Hex } from "../../src/crypto.ts";
import { adapterFiles, blobBytes, call, demoBase, json, newTenant, publish } from "./support/edge.ts";

it("gives 20 concurrent publishes of one adapter 20 distinct versions and 20 readable blobs", async () => {
  const spec = await demoBase();
  const { key } = await newTenant();
  const files = Array.from({ length: 20 }, (_, i) => adapterFiles(spec, { seed: 100 + i, r: 2 }));
  const published = await Promise.all(files.map((f) => publish(key, "busy", f)));

  const versions = published.map((p) => p.version).sort((a, b) => a - b);
  expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  for (const [i, p] of published.entries()) {
    expect(p.weightsSha256).toBe(await sha256Hex(files[i]?.safetensors ?? new Uint8Array()));
    expect(await sha256Hex(await blobBytes(p.weightsSha256))).toBe(p.weightsSha256);
  }
  const listing = await json<{ latest: number; versions: { version: number }[] }>(
    await call("GET", "/admin/adapters/busy", { token: key }),
    200,
  );
  expect(listing.latest).toBe(20);
  expect(listing.versions.map((v) => v.version)).toEqual(versions);
});

it("stores identical weights once, however many versions use them", async () => {
  const spec = await demoBase();
  const { key } = await newTenant();
  const files = adapterFiles(spec, { seed: 7 });
  const [a, b] = await Promise.all([publish(key, "twin", files), publish(key, "twin", files)]);
  expect(new Set([a.version, b.version])).toEqual(new Set([1, 2]));
  expect(a.weightsSha256).toBe(b.weightsSha256);
  const blobs = await env.ADAPTERS.list({ prefix: `blobs/sha256/${a.weightsSha256}` });
  expect(blobs.objects).toHaveLength(1);
});
