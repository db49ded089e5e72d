// The edge's client for the runner pool (DESIGN "Runner API"): OpenAI endpoints plus adapter loads, with the
// shared secret. `fetch` is injected, so tests intercept the outbound call without patching globals.
import {
  ADAPTER_CONFIG_HEADER,
  ADAPTER_NAME_HEADER,
  encodeAdapterConfigHeader,
  WEIGHTS_SHA256_HEADER,
} from "../../../src/contracts/runner.ts";
import { AppError } from "../../../src/errors.ts";

export interface RunnerClientOptions {
  /** One runner URL, or several separated by commas. */
  baseUrl: string;
  token: string;
  fetch: typeof fetch;
}

export interface AdapterLoad {
  adapterId: string;
  /** `name@version`, for the runner's logs and listings. */
  label: string;
  config: Record<string, unknown>;
  weightsSha256: string;
  weights: ReadableStream;
  sizeBytes: number;
}

export interface RunnerClient {
  /** The runner that serves this routing key (an adapter id or a base model id). */
  pick(routingKey: string): string;
  forward(path: string, body: unknown, init: { routingKey: string; requestId: string }): Promise<Response>;
  loadAdapter(load: AdapterLoad, requestId: string): Promise<void>;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

function parseUrls(baseUrl: string): string[] {
  const urls = baseUrl
    .split(",")
    .map((u) => u.trim().replace(/\/+$/, ""))
    .filter((u) => u !== "");
  for (const url of urls) {
    if (!/^https?:\/\/[^/]/.test(url)) {
      throw new AppError(
        "internal_error",
        `RUNNER_URL: must be http(s) URLs separated by commas; got ${JSON.stringify(url)}`,
      );
    }
  }
  if (urls.length === 0) throw new AppError("internal_error", "RUNNER_URL: must name at least one runner");
  return urls;
}

export function createRunnerClient(options: RunnerClientOptions): RunnerClient {
  const urls = parseUrls(options.baseUrl);
  const auth = `Bearer ${options.token}`;

  // Rendezvous hashing: an adapter sticks to one runner (its slot stays warm), and adding a runner moves
  // only the adapters that now score highest on it.
  const pick = (routingKey: string): string => {
    let best = urls[0] as string;
    let bestScore = -1;
    for (const url of urls) {
      const score = fnv1a(`${url}|${routingKey}`);
      if (score > bestScore) [best, bestScore] = [url, score];
    }
    return best;
  };

  const send = async (url: string, init: RequestInit): Promise<Response> => {
    try {
      return await options.fetch(url, init);
    } catch (error) {
      throw new AppError("unavailable", `runner ${url} is unreachable: ${(error as Error).message}`);
    }
  };

  return {
    pick,
    forward: (path, body, init) =>
      send(`${pick(init.routingKey)}${path}`, {
        method: "POST",
        headers: { authorization: auth, "content-type": "application/json", "x-request-id": init.requestId },
        body: JSON.stringify(body),
      }),
    async loadAdapter(load, requestId) {
      const url = `${pick(load.adapterId)}/v1/adapters/${load.adapterId}`;
      const res = await send(url, {
        method: "PUT",
        headers: {
          authorization: auth,
          "content-type": "application/octet-stream",
          "content-length": String(load.sizeBytes),
          "x-request-id": requestId,
          [ADAPTER_CONFIG_HEADER]: encodeAdapterConfigHeader(load.config),
          [WEIGHTS_SHA256_HEADER]: load.weightsSha256,
          [ADAPTER_NAME_HEADER]: load.label,
        },
        body: load.weights,
      });
      if (!res.ok) {
        const text = (await res.text()).slice(0, 500);
        throw new AppError(
          "upstream_error",
          `runner refused to load adapter ${load.label} (${res.status}): ${text}`,
        );
      }
      await res.body?.cancel();
    },
  };
}
