// The checks every engine applies to a step's rows before it runs, so both engines refuse the same input
// with the same messages: a known sequence at most once, tokens in the vocabulary, the context not exceeded.
import { AppError } from "../../src/errors.ts";
import type { ModelInfo, SequenceId, StepRow } from "./types.ts";

const invalid = (message: string, param?: string) => new AppError("invalid_request", message, { param });

/** `lookup` gives a row's sequence state and its cached length, or null for an unknown sequence. */
export function checkStepRows<S>(
  rows: StepRow[],
  info: ModelInfo,
  lookup: (seq: SequenceId) => { state: S; length: number } | null,
): S[] {
  if (rows.length === 0) throw invalid("step needs at least one row", "rows");
  const seen = new Set<SequenceId>();
  return rows.map((r, i) => {
    const found = lookup(r.seq);
    if (!found) throw invalid(`rows[${i}].seq: unknown sequence ${r.seq}`, "seq");
    if (seen.has(r.seq)) throw invalid(`rows[${i}].seq: sequence ${r.seq} appears twice in one step`, "seq");
    seen.add(r.seq);
    if (r.tokens.length === 0) throw invalid(`rows[${i}].tokens: must not be empty`, "tokens");
    const bad = r.tokens.find((t) => !Number.isInteger(t) || t < 0 || t >= info.vocabSize);
    if (bad !== undefined)
      throw invalid(`rows[${i}].tokens: ids must be 0..${info.vocabSize - 1}; got ${bad}`, "tokens");
    const length = found.length + r.tokens.length;
    if (length > info.maxPositions) {
      throw invalid(
        `rows[${i}]: sequence length must be <= ${info.maxPositions} (max positions); got ${length}`,
        "tokens",
      );
    }
    return found.state;
  });
}
