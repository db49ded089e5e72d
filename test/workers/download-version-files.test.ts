// A published version's files come back from the edge as they were published (the trainer downloads the prod
// champion this way), only to the tenant that owns them and only with scope publish.
import { expect, it } from "vitest";
import { sha256Hex } from "../../src/crypto.ts";
import {
  adapterFiles,
  call,
  demoBase,
  type ErrorBody,
  json,
  newKey,
  newTenant,
  publish,
} from "./support/edge.ts";

const weights = (name: string, version: number | string) =>
  `/admin/adapters/${name}/versions/${version}/files/adapter_model.safetensors`;
const config = (name: string, version: number | string) =>
  `/admin/adapters/${name}/versions/${version}/files/adapter_config.json`;

async function publishedTwice() {
  const spec = await demoBase();
  const owner = await newTenant();
  const first = adapterFiles(spec, { targets: ["q_proj", "v_proj"], r: 4, alpha: 8 });
  const second = adapterFiles(spec, { seed: 7, r: 2, alpha: 4 });
  await publish(owner.key, "helper", first, { alias: "prod" });
  await publish(owner.key, "helper", second);
  return { owner, first, second };
}

it("streams each version's weights and config exactly as published, with its digest", async () => {
  const { owner, first, second } = await publishedTwice();
  for (const [version, files] of [
    [1, first],
    [2, second],
  ] as const) {
    const res = await call("GET", weights("helper", version), { token: owner.key });
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const digest = await sha256Hex(files.safetensors);
    expect(await sha256Hex(bytes)).toBe(digest);
    expect(res.headers.get("content-length")).toBe(String(files.safetensors.byteLength));
    expect(res.headers.get("x-content-sha256")).toBe(digest);
    expect(res.headers.get("etag")).toBe(`"${digest}"`);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");

    const cfg = await call("GET", config("helper", version), { token: owner.key });
    expect(await json(cfg, 200)).toEqual(files.config);
  }
});

it("keeps a yanked version downloadable by number", async () => {
  const { owner, second } = await publishedTwice();
  await json(await call("POST", "/admin/adapters/helper/versions/2/yank", { token: owner.key }), 200);
  const res = await call("GET", weights("helper", 2), { token: owner.key });
  expect(res.status).toBe(200);
  expect(await sha256Hex(new Uint8Array(await res.arrayBuffer()))).toBe(await sha256Hex(second.safetensors));
});

it("answers 404 for another tenant's adapter, a missing version or a missing adapter", async () => {
  const { owner } = await publishedTwice();
  const other = await newTenant();
  for (const [token, path] of [
    [other.key, weights("helper", 1)],
    [other.key, config("helper", 1)],
    [owner.key, weights("helper", 3)],
    [owner.key, config("nobody", 1)],
  ] as const) {
    const res = await call("GET", path, { token });
    expect((await json<ErrorBody>(res, 404)).error.code).toBe("model_not_found");
  }
});

it("needs scope publish and a version number", async () => {
  const { owner } = await publishedTwice();
  const inferOnly = await newKey(owner.tenant, ["infer"]);
  for (const path of [weights("helper", 1), config("helper", 1)]) {
    const res = await call("GET", path, { token: inferOnly });
    expect((await json<ErrorBody>(res, 403)).error.message).toMatch(/needs scope "publish"/);
  }
  const publisher = await newKey(owner.tenant, ["publish"]);
  expect((await call("GET", weights("helper", 1), { token: publisher })).status).toBe(200);
  const byAlias = await call("GET", weights("helper", "prod"), { token: owner.key });
  const refused = await json<ErrorBody>(byAlias, 400);
  expect(refused.error.param).toBe("version");
});
