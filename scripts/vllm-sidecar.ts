// `npm run vllm-sidecar -- --vllm http://127.0.0.1:8000 --dir /var/lora --join <edge-url>`: puts a vLLM
// server into the edge's fleet (README, "vLLM servers as members"). The sidecar joins with the fleet key
// (FLEET_TOKEN or --fleet-token-file), takes the edge's adapter pushes, writes each as a PEFT folder under
// --dir and has vLLM load it by path; it forwards inference and drains on SIGTERM or the operator's word.
// vLLM needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, --enable-lora, --max-lora-rank >= the adapters' ranks,
// and --max-cpu-loras >= this --max-loras; it must read --dir at the same path.
import { mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { packageVersion, runChecked } from "../cli/flags.ts";
import { reportFailure } from "../cli/report.ts";
import { DrainGate } from "../gpu-runner/serving/fleet.ts";
import { parseFleetFlags } from "../gpu-runner/serving/fleet-flags.ts";
import { startMemberProcess } from "../gpu-runner/serving/member-process.ts";
import { LINEAR_KINDS, type LinearKind } from "../src/contracts/base-model.ts";
import { RunnerModelListSchema } from "../src/contracts/runner-vllm.ts";
import { AppError } from "../src/errors.ts";
import { createSidecar } from "./lib/vllm-sidecar-app.ts";

function bad(flag: string, rule: string, value: unknown): AppError {
  return new AppError("invalid_request", `--${flag} must be ${rule}; got ${JSON.stringify(value)}`, {
    param: flag,
  });
}

function int(flag: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) throw bad(flag, `an integer in ${min}..${max}`, raw);
  return n;
}

/** The base model vLLM serves and its context, from its /v1/models (the card without a parent). */
async function vllmBase(url: string, key: string | null): Promise<{ id: string; context: number }> {
  let res: Response;
  try {
    res = await fetch(`${url}/v1/models`, {
      headers: key === null ? {} : { authorization: `Bearer ${key}` },
    });
  } catch (error) {
    throw new AppError(
      "unavailable",
      `--vllm ${url}: /v1/models did not answer (${(error as Error).message})`,
    );
  }
  const parsed = RunnerModelListSchema.safeParse(await res.json().catch(() => null));
  const base = parsed.success ? parsed.data.data.find((m) => m.parent === null) : undefined;
  if (base === undefined) throw bad("vllm", "a vLLM server whose /v1/models lists its base model", url);
  return { id: base.id, context: base.max_model_len };
}

const command = defineCommand({
  meta: { name: "vllm-sidecar", description: "Join a vLLM server to the lora-edge fleet" },
  args: {
    vllm: { type: "string", required: true, description: "the vLLM server's URL" },
    dir: { type: "string", required: true, description: "folder for PEFT adapter folders (vLLM reads them)" },
    join: { type: "string", description: "edge URL to join (fleet key: FLEET_TOKEN or --fleet-token-file)" },
    "fleet-token-file": { type: "string", description: "file holding the fleet key, instead of FLEET_TOKEN" },
    "advertise-url": { type: "string", description: "URL the edge reaches this sidecar at" },
    capacity: { type: "string", description: "relative capacity in the fleet, > 0; default 1" },
    host: { type: "string", default: "127.0.0.1", description: "address to listen on" },
    port: { type: "string", default: "8100", description: "port to listen on" },
    "max-loras": {
      type: "string",
      default: "8",
      description: "adapters kept loaded in vLLM (<= its --max-cpu-loras)",
    },
    "max-lora-rank": { type: "string", default: "16", description: "vLLM's --max-lora-rank" },
    "target-modules": {
      type: "string",
      description: `linear kinds vLLM adapts, comma-separated; default all (${LINEAR_KINDS.join(",")})`,
    },
    "base-model": { type: "string", description: "base model id at the edge; default vLLM's served name" },
  },
  async run({ args }) {
    try {
      const maxLoras = int("max-loras", args["max-loras"], 1, 100_000);
      const maxLoraRank = int("max-lora-rank", args["max-lora-rank"], 1, 4096);
      const port = int("port", args.port, 0, 65535);
      const kinds = (args["target-modules"] ?? LINEAR_KINDS.join(",")).split(",").map((k) => k.trim());
      const unknown = kinds.find((k) => !(LINEAR_KINDS as readonly string[]).includes(k));
      if (unknown !== undefined)
        throw bad("target-modules", `kinds among ${LINEAR_KINDS.join(", ")}`, unknown);
      const fleet = parseFleetFlags(
        {
          join: args.join,
          "fleet-token-file": args["fleet-token-file"],
          "advertise-url": args["advertise-url"],
          capacity: args.capacity,
        },
        process.env,
      );
      const vllmUrl = args.vllm.replace(/\/+$/, "");
      const vllmKey = process.env.VLLM_API_KEY || null;
      const base = await vllmBase(vllmUrl, vllmKey);
      const dir = resolve(args.dir);
      await mkdir(dir, { recursive: true });
      const baseModel = args["base-model"] ?? base.id;
      // the gate is built first: the app reads it for /ready, and member-process.ts drains through it
      const gate = new DrainGate();
      const sidecar = createSidecar({
        vllmUrl,
        vllmKey,
        dir,
        baseModel,
        maxLoras,
        maxLoraRank,
        runnerToken: process.env.RUNNER_TOKEN || null,
        version: packageVersion(),
        drain: gate,
      });
      startMemberProcess({
        name: "vllm-sidecar",
        fetch: sidecar.app.fetch,
        gate,
        host: args.host,
        port,
        fleet,
        membership: ({ url, capacity }) => ({
          info: {
            url,
            kind: "vllm",
            baseModel,
            baseModelFingerprint: null,
            capacity,
            maxLoraRank,
            targetModules: kinds as LinearKind[],
            slots: maxLoras,
            context: base.context,
            version: packageVersion(),
          },
          report: () => ({ inFlight: gate.inFlight, queueDepth: 0, resident: sidecar.resident() }),
        }),
        onListening: (bound) =>
          console.log(`vllm-sidecar: ${base.id} at ${vllmUrl}, listening on http://${args.host}:${bound}`),
        process,
      });
    } catch (error) {
      reportFailure(error, false);
    }
  },
});

await runChecked(command);
