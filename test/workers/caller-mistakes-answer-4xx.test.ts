// A caller's mistake is answered 4xx with the field, the rule and the value, never 500: unknown multipart
// upload ids, wrong part lists, bodies of the wrong media type, numbers that are not decimal, keys that are
// dead on arrival, base models too large to build (docs/conventions.md#errors).
import { describe, expect, it } from "vitest";
import { BASE_MODEL_BOUNDS } from "../../src/contracts/admin.ts";
import { demoSpecConfig } from "../helpers/peft-files.ts";
import {
  ADMIN,
  adapterFiles,
  call,
  demoBase,
  type ErrorBody,
  json,
  newTenant,
  publish,
} from "./support/edge.ts";

async function multipart(key: string) {
  const created = await json<{ upload: string; uploadId: string }>(
    await call("POST", "/admin/uploads/multipart", { token: key, json: { sha256: "ef".repeat(32) } }),
    201,
  );
  const query = `uploadId=${encodeURIComponent(created.uploadId)}`;
  /** R2 wants every part but the last to be at least 5 MiB. */
  const part = async (n: number, bytes = 64) =>
    await json<{ partNumber: number; etag: string }>(
      await call("PUT", `/admin/uploads/${created.upload}/parts/${n}?${query}`, {
        token: key,
        body: new Uint8Array(bytes).fill(n),
      }),
      200,
    );
  const complete = (parts: unknown[]) =>
    call("POST", `/admin/uploads/${created.upload}/complete`, {
      token: key,
      json: { uploadId: created.uploadId, parts },
    });
  return { ...created, query, part, complete };
}

describe("multipart uploads", () => {
  it("answers 404 to aborting an upload id that does not exist, or no longer does", async () => {
    const { key } = await newTenant();
    const unknown = await call("DELETE", `/admin/uploads/${crypto.randomUUID()}?uploadId=nope`, {
      token: key,
    });
    expect((await json<ErrorBody>(unknown, 404)).error).toMatchObject({
      code: "not_found",
      param: "uploadId",
    });

    const m = await multipart(key);
    const wrongId = await call("DELETE", `/admin/uploads/${m.upload}?uploadId=not-${m.uploadId}`, {
      token: key,
    });
    expect((await json<ErrorBody>(wrongId, 404)).error.param).toBe("uploadId");
    expect((await call("DELETE", `/admin/uploads/${m.upload}?${m.query}`, { token: key })).status).toBe(204);
    const again = await call("DELETE", `/admin/uploads/${m.upload}?${m.query}`, { token: key });
    expect((await json<ErrorBody>(again, 404)).error.param).toBe("uploadId");
    const partAfter = await call("PUT", `/admin/uploads/${m.upload}/parts/1?${m.query}`, {
      token: key,
      body: new Uint8Array(8),
    });
    expect((await json<ErrorBody>(partAfter, 404)).error.param).toBe("uploadId");
  });

  it("refuses a wrong etag, naming the part", async () => {
    const { key } = await newTenant();
    const m = await multipart(key);
    const one = await m.part(1);
    const body = await json<ErrorBody>(await m.complete([{ partNumber: 1, etag: `${one.etag}x` }]), 400);
    expect(body.error).toMatchObject({ code: "invalid_request", param: "parts[0].etag" });
    expect(body.error.message).toContain("parts[0].etag: must be the etag the upload of part 1 answered");
    // The mistake cost nothing: the right list completes.
    expect((await m.complete([one])).status).toBe(201);
  });

  it("refuses a part list with a part missing, repeated, never uploaded or left out, naming the part", async () => {
    const { key } = await newTenant();
    const m = await multipart(key);
    const one = await m.part(1, 5 * 1024 * 1024);
    const two = await m.part(2);

    const gap = await json<ErrorBody>(await m.complete([one, { ...two, partNumber: 3 }]), 400);
    expect(gap.error.param).toBe("parts[1].partNumber");
    expect(gap.error.message).toContain("parts[1].partNumber: part 2 is missing");
    expect(gap.error.message).toContain("got 3");

    const repeated = await json<ErrorBody>(await m.complete([one, one, two]), 400);
    expect(repeated.error.message).toContain("parts[1].partNumber: must be 2");

    const neverUploaded = await json<ErrorBody>(
      await m.complete([one, two, { partNumber: 3, etag: two.etag }]),
      400,
    );
    expect(neverUploaded.error).toMatchObject({ param: "parts[2].partNumber" });
    expect(neverUploaded.error.message).toContain("part 3 was never uploaded under this uploadId");

    const leftOut = await json<ErrorBody>(await m.complete([one]), 400);
    expect(leftOut.error.message).toContain("part 2 was uploaded but is not listed");

    const done = await json<{ sizeBytes: number }>(await m.complete([one, two]), 201);
    expect(done.sizeBytes).toBe(5 * 1024 * 1024 + 64);
  });

  it("refuses a part number that is not a decimal integer", async () => {
    const { key } = await newTenant();
    const m = await multipart(key);
    for (const part of ["0x1", "1e0", "01", "0", "10001"]) {
      const res = await call("PUT", `/admin/uploads/${m.upload}/parts/${part}?${m.query}`, {
        token: key,
        body: new Uint8Array(8),
      });
      expect((await json<ErrorBody>(res, 400)).error.message).toContain("param.part");
    }
  });
});

describe("media types", () => {
  it("answers 415 to a JSON route sent another media type, instead of reporting every field missing", async () => {
    const { key } = await newTenant();
    const cases: [string, string, string | undefined][] = [
      ["POST", "/admin/tenants", "text/plain"],
      ["POST", "/admin/keys", "application/x-www-form-urlencoded"],
      ["PUT", "/admin/adapters/x/aliases/prod", "text/plain;charset=UTF-8"],
      ["POST", "/v1/chat/completions", "application/jsonl"],
      ["POST", "/admin/routes", undefined],
    ];
    for (const [method, path, type] of cases) {
      const res = await call(method, path, {
        token: path === "/admin/tenants" ? ADMIN : key,
        // Bytes, not a string: a string body would get a text/plain type by default.
        body: new TextEncoder().encode(JSON.stringify({ name: "x" })),
        headers: type === undefined ? {} : { "content-type": type },
      });
      const body = await json<ErrorBody>(res, 415);
      expect(body.error).toMatchObject({ code: "unsupported_media_type", param: "Content-Type" });
      expect(body.error.message).toBe(
        `Content-Type: must be application/json for ${method} ${path}; got ${type === undefined ? "none" : JSON.stringify(type)}`,
      );
    }
  });

  it("reads JSON sent as application/json with parameters or as a +json type", async () => {
    const { key } = await newTenant();
    for (const type of ["application/json; charset=utf-8", "application/vnd.api+json"]) {
      const res = await call("POST", "/admin/routes", {
        token: key,
        body: JSON.stringify({ name: "r" }),
        headers: { "content-type": type },
      });
      // Past the media type: the schema judges the fields.
      expect((await json<ErrorBody>(res, 400)).error.code).toBe("invalid_request");
    }
  });

  it("keeps upload routes for raw bytes, and bodiless POSTs free of a media type", async () => {
    const { key } = await newTenant();
    await publish(key, "plain", adapterFiles(await demoBase(), { seed: 1 }));
    await publish(key, "plain", adapterFiles(await demoBase(), { seed: 2 }));
    const yank = await call("POST", "/admin/adapters/plain/versions/1/yank", { token: key });
    expect(yank.status).toBe(200);
  });
});

describe("numbers in paths and queries", () => {
  it("refuses version segments that are not decimal integers without leading zeros", async () => {
    const { key } = await newTenant();
    await publish(key, "numbers", adapterFiles(await demoBase(), { seed: 1 }));
    for (const segment of ["0x1", "1e0", "01", "1.0", "%201", "+1", "0", "-1", "99999999999999999999"]) {
      for (const [method, suffix] of [
        ["GET", ""],
        ["POST", "/yank"],
        ["GET", "/files/adapter_config.json"],
      ] as const) {
        const res = await call(method, `/admin/adapters/numbers/versions/${segment}${suffix}`, {
          token: key,
        });
        const body = await json<ErrorBody>(res, 400);
        expect(body.error.code).toBe("invalid_request");
        expect(body.error.message).toMatch(/^param\.version: must be/);
      }
    }
    expect((await call("GET", "/admin/adapters/numbers/versions/1", { token: key })).status).toBe(200);
  });

  it("refuses audit paging numbers that are not decimal integers", async () => {
    const { key } = await newTenant();
    for (const query of ["limit=1e2", "limit=0x10", "before=07", "limit=501"]) {
      const res = await call("GET", `/admin/audit?${query}`, { token: key });
      expect((await json<ErrorBody>(res, 400)).error.message).toMatch(/^query\.(limit|before): must be/);
    }
    expect((await call("GET", "/admin/audit?limit=10", { token: key })).status).toBe(200);
  });
});

describe("keys and base models", () => {
  it("refuses a key that would be expired when created, naming expiresAt", async () => {
    const { tenant } = await newTenant();
    for (const expiresAt of ["2000-01-01T00:00:00Z", new Date(Date.now() - 1000).toISOString()]) {
      const res = await call("POST", "/admin/keys", {
        token: ADMIN,
        json: { tenant, name: "late", scopes: ["infer"], expiresAt },
      });
      const body = await json<ErrorBody>(res, 400);
      expect(body.error).toMatchObject({ code: "invalid_request", param: "expiresAt" });
      expect(body.error.message).toBe(
        `body.expiresAt: must be in the future; got ${JSON.stringify(expiresAt)}, which has passed`,
      );
    }
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const ok = await call("POST", "/admin/keys", {
      token: ADMIN,
      json: { tenant, name: "soon", scopes: ["infer"], expiresAt: later },
    });
    expect(ok.status).toBe(201);
  });

  it("refuses a base model too large to build before building it, naming the field and the bound", async () => {
    const cases: [keyof typeof BASE_MODEL_BOUNDS, number][] = [
      ["num_hidden_layers", 1e9],
      ["num_hidden_layers", BASE_MODEL_BOUNDS.num_hidden_layers + 1],
      ["hidden_size", 2 ** 40],
      ["vocab_size", Number.MAX_SAFE_INTEGER],
    ];
    for (const [field, value] of cases) {
      const res = await call("PUT", "/admin/base-models/huge", {
        token: ADMIN,
        json: { ...demoSpecConfig(), [field]: value },
      });
      const body = await json<ErrorBody>(res, 400);
      expect(body.error).toMatchObject({ code: "invalid_model", param: field });
      expect(body.error.message).toBe(
        `base model "huge" config.json: ${field}: must be <= ${BASE_MODEL_BOUNDS[field]}; got ${value}`,
      );
    }
    const atBound = await call("PUT", "/admin/base-models/deep", {
      token: ADMIN,
      json: { ...demoSpecConfig(), num_hidden_layers: BASE_MODEL_BOUNDS.num_hidden_layers },
    });
    const spec = await json<{ spec: { modules: unknown[] } }>(atBound, 201);
    expect(spec.spec.modules).toHaveLength(BASE_MODEL_BOUNDS.num_hidden_layers * 7);
  });
});
