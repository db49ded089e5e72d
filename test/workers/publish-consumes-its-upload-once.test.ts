// A staged upload is consumed exactly once: of several publishes racing on one upload, one makes a version
// and the others answer 409; a publish refused before it starts (its body fails the schema) still deletes the
// upload it names (docs/architecture.md#invariants).
import { expect, it } from "vitest";
import { sha256Hex } from "../../src/crypto.ts";
import {
  adapterFiles,
  blobBytes,
  call,
  demoBase,
  type ErrorBody,
  footprint,
  json,
  newTenant,
  upload,
} from "./support/edge.ts";

const ROUNDS = 6;
const RACERS = 5;

it("turns five publishes racing on one upload into one version; the other four answer 409", async () => {
  const spec = await demoBase();
  const { tenant, key } = await newTenant();
  for (let round = 0; round < ROUNDS; round++) {
    const files = adapterFiles(spec, { seed: 500 + round });
    const staged = await json<{ upload: string }>(await upload(key, files.safetensors), 201);
    const before = await footprint(tenant);
    // Even rounds race on one name, odd rounds on five names: one upload must never become two adapters.
    const names = Array.from({ length: RACERS }, (_, i) =>
      round % 2 === 0 ? `once-${round}` : `many-${round}-${i}`,
    );
    const answers = await Promise.all(
      names.map((name) =>
        call("POST", `/admin/adapters/${name}/versions`, {
          token: key,
          json: { upload: staged.upload, base: "demo-llama", config: files.config },
        }),
      ),
    );

    expect(answers.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409]);
    for (const refused of answers.filter((r) => r.status === 409)) {
      const body = await json<ErrorBody>(refused, 409);
      expect(body.error).toMatchObject({ code: "conflict", param: "upload" });
      expect(body.error.message).toContain(staged.upload);
    }
    const published = await json<{ weightsSha256: string; version: number }>(
      answers.find((r) => r.status === 201) as Response,
      201,
    );
    expect(published.version).toBe(1);
    const after = await footprint(tenant);
    expect(after.versions - before.versions).toBe(1);
    expect(after.adapters - before.adapters).toBe(1);
    expect(after.uploads).toBe(0);
    expect(await sha256Hex(await blobBytes(published.weightsSha256))).toBe(published.weightsSha256);
  }
});

it("deletes the staged upload of a publish whose body fails the schema", async () => {
  const spec = await demoBase();
  const { tenant, key } = await newTenant();
  const files = adapterFiles(spec, { seed: 77 });
  const bodies: Record<string, unknown>[] = [
    { base: "demo-llama", config: files.config, alias: "12" },
    { base: "demo-llama", config: files.config, surprise: true },
    { base: "demo-llama", config: "not an object" },
    { config: files.config },
  ];
  for (const extra of bodies) {
    const staged = await json<{ upload: string }>(await upload(key, files.safetensors), 201);
    expect((await footprint(tenant)).uploads).toBe(1);
    const res = await call("POST", "/admin/adapters/refused/versions", {
      token: key,
      json: { upload: staged.upload, ...extra },
    });
    const body = await json<ErrorBody>(res, 400);
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.message).toMatch(/^body[.:]/);
    expect(await footprint(tenant)).toEqual({
      adapters: 0,
      versions: 0,
      aliases: 0,
      blobs: expect.any(Number),
      uploads: 0,
    });
    // The upload is gone, so a corrected publish of it reads as not found rather than publishing.
    const retry = await call("POST", "/admin/adapters/refused/versions", {
      token: key,
      json: { upload: staged.upload, base: "demo-llama", config: files.config },
    });
    expect((await json<ErrorBody>(retry, 404)).error.param).toBe("upload");
  }
});

it("leaves another tenant's upload alone when a refused publish names it", async () => {
  const spec = await demoBase();
  const owner = await newTenant();
  const other = await newTenant();
  const files = adapterFiles(spec, { seed: 78 });
  const staged = await json<{ upload: string }>(await upload(owner.key, files.safetensors), 201);
  const res = await call("POST", "/admin/adapters/stolen/versions", {
    token: other.key,
    json: { upload: staged.upload, base: "demo-llama", config: files.config, alias: "12" },
  });
  await json<ErrorBody>(res, 400);
  expect((await footprint(owner.tenant)).uploads).toBe(1);
  const mine = await call("POST", "/admin/adapters/mine/versions", {
    token: owner.key,
    json: { upload: staged.upload, base: "demo-llama", config: files.config },
  });
  await json(mine, 201);
});
