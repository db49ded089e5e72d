// Load generation and statistics for `npm run bench:edge`: closed-loop clients on loopback, latency
// percentiles, a stand-in runner that answers at once, and a sink that only receives bytes.
import { createServer, type Server } from "node:http";

export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
}

export function percentiles(samples: number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99) };
}

export const median = (xs: number[]): number => percentiles(xs).p50;

/** `total` requests from `concurrency` clients, each sending its next request when the last one ends. */
export async function closedLoop(
  concurrency: number,
  total: number,
  send: () => Promise<Response>,
): Promise<number[]> {
  const latencies: number[] = [];
  let issued = 0;
  const client = async () => {
    while (issued < total) {
      issued++;
      const started = performance.now();
      const res = await send();
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`request failed: ${res.status}`);
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  return latencies;
}

const body = (model: string) =>
  JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 1, temperature: 0 });

export function post(url: string, token: string, model: string): () => Promise<Response> {
  return () =>
    fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body(model),
    });
}

export function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(`http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`);
    }),
  );
}

const ANSWER = JSON.stringify({
  id: "chatcmpl-stub",
  object: "chat.completion",
  created: 1,
  model: "stub",
  choices: [
    { index: 0, message: { role: "assistant", content: "ok" }, logprobs: null, finish_reason: "stop" },
  ],
  usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
});

/** A runner that answers every completion at once: what remains of a request's time is the path's. */
export async function startStubRunner(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(ANSWER) });
      res.end(ANSWER);
    });
  });
  const url = await listen(server);
  return { url, close: () => new Promise((r) => server.close(() => r())) };
}

/** Receives a body and drops it: the pure transfer time of bytes over loopback HTTP. */
export async function startSink(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end("{}"));
  });
  const url = await listen(server);
  return { url, close: () => new Promise((r) => server.close(() => r())) };
}
