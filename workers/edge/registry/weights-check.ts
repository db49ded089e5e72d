// The edge's value check on an adapter's weights as they stream from the staged upload to their blob: every
// float must be finite (src/adapters/finite-weights.ts judges). The weights never sit in memory whole; the
// stream refuses at its end, before its last bytes pass, so a refused file never becomes a blob.
import { NonFiniteScan } from "../../../src/adapters/finite-weights.ts";
import { problemsError } from "../../../src/contracts/issues.ts";
import type { SafetensorsHeader } from "../../../src/safetensors.ts";

/**
 * A pass-through stream that scans the safetensors file flowing through it (from byte 0) and errors with
 * invalid_adapter, naming each tensor with a NaN or ±Inf and its first bad index, when any is found. It
 * holds back the latest chunk until the next arrives, and the last one until the scan is complete, so a
 * destination of known length (R2's put through a FixedLengthStream) never receives a refused file whole.
 */
export function finiteWeightsCheck(
  header: SafetensorsHeader,
  label: string,
): TransformStream<Uint8Array, Uint8Array> {
  const scan = new NonFiniteScan(header);
  let held: Uint8Array | null = null;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      scan.push(chunk);
      if (held !== null) controller.enqueue(held);
      held = chunk;
    },
    flush(controller) {
      const problems = scan.problems();
      if (problems.length > 0) {
        throw problemsError(
          "invalid_adapter",
          problems.map((p) => `${label}: ${p}; every weight must be finite (no NaN or Inf)`),
        );
      }
      if (held !== null) controller.enqueue(held);
    },
  });
}
