// The body between runner and client: whole SSE events only, a clean error event when the runner dies, the
// content id renamed to name@version, and a client's cancel reaching the runner's stream.
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/errors.ts";
import { eventBoundary, guardStream } from "../../workers/edge/pool/guard-stream.ts";

const encoder = new TextEncoder();
const ID = "ab".repeat(32);

function source(parts: string[], fail = false) {
  const seen = { cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = parts.shift();
      if (next !== undefined) return controller.enqueue(encoder.encode(next));
      if (fail) return controller.error(new Error("socket closed"));
      controller.close();
    },
    cancel() {
      seen.cancelled = true;
    },
  });
  return { stream, seen };
}

function guard(stream: ReadableStream<Uint8Array>, sse: boolean, ends: string[] = []) {
  return guardStream(stream, {
    sse,
    onEnd: (outcome) => ends.push(outcome),
    failure: () => new AppError("upstream_error", "the runner failed"),
    rename: { from: ID, to: "support@3" },
  });
}

describe("guardStream", () => {
  it("finds event boundaries for \\n\\n and \\r\\n\\r\\n", () => {
    expect(eventBoundary(encoder.encode("data: 1\n\ndata: 2"))).toBe(9);
    expect(eventBoundary(encoder.encode("data: 1\r\n\r\ndata"))).toBe(11);
    expect(eventBoundary(encoder.encode("data: 1\n"))).toBe(0);
  });

  it("passes events whole, however the runner's chunks cut them, and renames the content id", async () => {
    const { stream } = source([`data: {"model":"${ID}","a"`, ':1}\n\ndata: {"b"', ":2}\n\ndata: [DONE]\n\n"]);
    const reader = guard(stream, true).getReader();
    const chunks: string[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read())
      chunks.push(new TextDecoder().decode(r.value));
    expect(chunks).toEqual(['data: {"model":"support@3","a":1}\n\n', 'data: {"b":2}\n\ndata: [DONE]\n\n']);
  });

  it("ends a broken SSE body with one error event and [DONE], and reports the failure once", async () => {
    const ends: string[] = [];
    const { stream } = source(['data: {"a":1}\n\ndata: {"torn'], true);
    const text = await new Response(guard(stream, true, ends)).text();
    const events = text.split("\n\n").filter((e) => e !== "");
    expect(events).toHaveLength(3);
    expect(JSON.parse((events[1] as string).slice(6))).toMatchObject({
      error: { code: "upstream_error", type: "server_error" },
    });
    expect(events[2]).toBe("data: [DONE]");
    expect(ends).toEqual(["failed"]);
  });

  it("renames a JSON answer as a whole and errors a broken one", async () => {
    const { stream } = source([`{"model":"${ID.slice(0, 10)}`, `${ID.slice(10)}","x":1}`]);
    expect(await new Response(guard(stream, false)).json()).toEqual({ model: "support@3", x: 1 });
    const broken = source(["{"], true);
    await expect(new Response(guard(broken.stream, false)).text()).rejects.toThrow("the runner failed");
  });

  it("cancels the runner's stream when the client cancels", async () => {
    const ends: string[] = [];
    const { stream, seen } = source(["data: 1\n\n", "data: 2\n\n"]);
    const reader = guard(stream, true, ends).getReader();
    await reader.read();
    await reader.cancel("client went away");
    expect(seen.cancelled).toBe(true);
    expect(ends).toEqual(["cancelled"]);
  });
});
