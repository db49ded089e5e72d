// Errors after a stream has started cannot change the status code any more; like vLLM we send the error
// envelope as one more event, then end the stream.
import type { SSEStreamingApi } from "hono/streaming";
import type { Context } from "hono";
import { toAppError } from "../../../src/http/errors.ts";
import { publicEnvelope, requestIdOf } from "./request-id.ts";

/** The onError of a request's stream: a 5xx says only that it failed and the request id (request-id.ts). */
export function streamErrorWriter(c: Context) {
  return async (error: Error, stream: SSEStreamingApi): Promise<void> => {
    const envelope = publicEnvelope(toAppError(error), requestIdOf(c), error);
    await stream.writeSSE({ data: JSON.stringify(envelope) });
    await stream.writeSSE({ data: "[DONE]" });
    // Hono's streamSSE writes the raw error's message as an `event: error` after this returns; a closed
    // stream drops that write, so runner-internal text never reaches the client
    await stream.close();
  };
}
