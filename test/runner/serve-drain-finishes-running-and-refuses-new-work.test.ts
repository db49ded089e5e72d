// Drain on the real runner app (engine on onnxruntime, real tokenizer): once draining, new work is refused
// with 503 in the OpenAI envelope (the edge moves it to another runner before the first byte), probes still
// answer, a stream that was running ends whole, and the gate turns idle only after its last byte. Also the
// fleet flags: the key never comes from argv, and companions of --join are refused without it.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../gpu-runner/serving/config.ts";
import { DrainGate, runnerMembership } from "../../gpu-runner/serving/fleet.ts";
import { JoinRequestSchema } from "../../src/contracts/fleet.ts";
import { type DemoDirs, makeDemoDirs, startTestRunner, type TestRunner } from "./serve-helpers.ts";

let dirs: DemoDirs;
let runner: TestRunner;
const gate = new DrainGate();
let fetchThrough: (request: Request) => Response | Promise<Response>;

beforeAll(async () => {
  dirs = await makeDemoDirs();
  runner = await startTestRunner(dirs.model);
  fetchThrough = gate.wrap((request) => runner.app.fetch(request));
});
afterAll(async () => {
  await runner?.close();
  await dirs?.cleanup();
});

const chat = (extra: Record<string, unknown> = {}) =>
  new Request("http://runner/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "demo-llama",
      messages: [{ role: "user", content: "Where is my parcel?" }],
      max_tokens: 40,
      temperature: 0,
      ...extra,
    }),
  });

describe("drain", () => {
  it("lets a running stream finish, refuses new work with 503, keeps probes, then turns idle", async () => {
    const res = await fetchThrough(chat({ stream: true }));
    expect(res.status).toBe(200);
    expect(gate.inFlight).toBe(1);
    gate.drain();
    let idle = false;
    const idled = gate.idle().then(() => {
      idle = true;
    });
    const refused = await fetchThrough(chat());
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("unavailable");
    expect((await fetchThrough(new Request("http://runner/health"))).status).toBe(200);
    expect(idle).toBe(false);
    const text = await res.text();
    await idled;
    expect(idle).toBe(true);
    expect(gate.inFlight).toBe(0);
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
  });

  it("describes the runner to the edge by the contract, with its residents' request counts", () => {
    const m = runnerMembership(runner.runner.deps, { url: "http://127.0.0.1:1", capacity: 2, gate });
    expect(JoinRequestSchema.parse(m.info)).toMatchObject({
      kind: "runner",
      baseModel: "demo-llama",
      capacity: 2,
      maxLoraRank: runner.runner.deps.engine.maxRank,
      slots: runner.runner.deps.engine.maxSlots,
    });
    expect(m.report().inFlight).toBe(0);
  });
});

describe("fleet flags", () => {
  it("takes the key from FLEET_TOKEN or a file, never argv, and refuses companions without --join", async () => {
    const file = join(dirs.root, "fleet-token");
    await writeFile(file, "lek_from_file\n");
    const viaEnv = parseConfig(["--model", "m", "--join", "http://edge:1/"], { FLEET_TOKEN: "lek_env" });
    expect(viaEnv.fleet).toEqual({
      edgeUrl: "http://edge:1",
      token: "lek_env",
      advertiseUrl: null,
      capacity: 1,
    });
    const viaFile = parseConfig(
      [
        "--model",
        "m",
        "--join",
        "http://edge:1",
        "--fleet-token-file",
        file,
        "--advertise-url",
        "http://me:9",
      ],
      {},
    );
    expect(viaFile.fleet).toMatchObject({ token: "lek_from_file", advertiseUrl: "http://me:9" });
    expect(() => parseConfig(["--model", "m", "--join", "http://edge:1"], {})).toThrow(/FLEET_TOKEN/);
    expect(() => parseConfig(["--model", "m", "--advertise-url", "http://me:9"], {})).toThrow(
      /--advertise-url/,
    );
    expect(() => parseConfig(["--model", "m", "--join", "edge"], { FLEET_TOKEN: "k" })).toThrow(/--join/);
    expect(() => parseConfig(["--model", "m", "--fleet-token", "k"], {})).toThrow(/--fleet-token/);
    expect(parseConfig(["--model", "m"], {}).fleet).toBeNull();
  });
});
