// Errors after a stream has started cannot change the status code any more; like vLLM we send the error
// envelope as one more event, then end the stream.
import type { SSEStreamingApi } from "hono/streaming";
import { AppError, errorEnvelope } from "../../../src/errors.ts";

export async function writeStreamError(error: Error, stream: SSEStreamingApi): Promise<void> {
  const appError = error instanceof AppError ? error : new AppError("internal_error", "generation failed");
  if (!(error instanceof AppError)) console.error("stream failed:", error);
  await stream.writeSSE({ data: JSON.stringify(errorEnvelope(appError)) });
  await stream.writeSSE({ data: "[DONE]" });
}
