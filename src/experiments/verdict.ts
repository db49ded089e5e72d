// The verdict an experiment's results support, in words: which variant beats control at 95% confidence (its
// difference interval lies above 0), which is worse, and when the numbers are not to be trusted (a sample-ratio
// alarm) or not yet enough. `npm run demo:traffic` prints it and the console's experiment page shows it, so
// both say the same. It reads the results; it never changes a route.
import type { Results, VariantResult } from "../contracts/experiments.ts";

interface Judged {
  variant: string;
  kind: "better" | "worse" | "inconclusive";
  /** Feedback mean minus control's, and its 95% interval. */
  diff: number;
  ci95: [number, number];
}

export type VariantVerdict =
  | Judged
  | { variant: string; kind: "no_feedback" }
  | { variant: string; kind: "cut"; reason: string };

export interface Verdict {
  /** False when the sample-ratio check alarms: the split is broken and no difference can be trusted. */
  trusted: boolean;
  variants: VariantVerdict[];
  /** The variant to promote: better than control, not cut, and the best such; null when there is none. */
  winner: string | null;
}

function judge(v: VariantResult): VariantVerdict {
  if (v.state === "cut") return { variant: v.variant, kind: "cut", reason: v.cutReason ?? "guardrail" };
  if (v.diffToControl === null) return { variant: v.variant, kind: "no_feedback" };
  const { mean, ci95 } = v.diffToControl;
  const kind = ci95[0] > 0 ? "better" : ci95[1] < 0 ? "worse" : "inconclusive";
  return { variant: v.variant, kind, diff: mean, ci95 };
}

export function verdictOf(results: Results): Verdict {
  const challengers = results.variants.filter((v) => !v.shadow && v.variant !== results.control);
  const variants = challengers.map(judge);
  const trusted = results.srm?.alarm !== true;
  const better = variants.filter((v): v is Judged => v.kind === "better").sort((a, b) => b.diff - a.diff);
  return { trusted, variants, winner: trusted ? (better[0]?.variant ?? null) : null };
}

const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(3)}`;
const interval = (ci: [number, number]) => `[${signed(ci[0])}, ${signed(ci[1])}]`;

/** One sentence per challenger, e.g. `canary is better than control at 95% confidence: +0.190 [+0.110, +0.270]`. */
export function describeVerdict(results: Results, verdict: Verdict = verdictOf(results)): string[] {
  const control = results.control;
  const sentence = (v: VariantVerdict): string => {
    switch (v.kind) {
      case "better":
        return `${v.variant} is better than ${control} at 95% confidence: feedback ${signed(v.diff)} ${interval(v.ci95)}, the whole interval above 0`;
      case "worse":
        return `${v.variant} is worse than ${control} at 95% confidence: feedback ${signed(v.diff)} ${interval(v.ci95)}, the whole interval below 0`;
      case "inconclusive":
        return `${v.variant} against ${control}: no difference at 95% confidence yet (feedback ${signed(v.diff)} ${interval(v.ci95)} spans 0); more traffic narrows it`;
      case "no_feedback":
        return `${v.variant} against ${control}: no feedback on both yet`;
      case "cut":
        return `${v.variant} was cut by a guardrail (${v.reason}); its traffic goes to ${control}`;
    }
  };
  const lines = verdict.variants.map(sentence);
  if (!verdict.trusted)
    lines.unshift("the sample-ratio check alarms (p < 0.001): the split is broken, so no verdict holds");
  return lines;
}
