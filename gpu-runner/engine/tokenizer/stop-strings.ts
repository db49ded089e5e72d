// Stop strings over streamed text. Text that could still turn into a stop string is held back, so a
// client never receives the beginning of a stop string that is later cut.

export interface StopResult {
  /** Text safe to send now. */
  text: string;
  /** True when a stop string was found; `text` then ends right before it. */
  stopped: boolean;
}

export interface StopMatcher {
  /**
   * Adds text. With `check` false the text is only passed through (min_tokens: vLLM looks for stop strings
   * only once that many tokens exist); a later match must end in text pushed with `check` on.
   */
  push(chunk: string, check?: boolean): StopResult;
  /** The held-back tail, once generation ended for another reason. */
  flush(): string;
  /** The stop string that stopped it, once one did (vLLM's include_stop_str_in_output appends it). */
  matched(): string | null;
}

function heldBackLength(text: string, stops: string[]): number {
  let hold = 0;
  for (const stop of stops) {
    const max = Math.min(stop.length - 1, text.length);
    for (let n = max; n > hold; n--) {
      if (stop.startsWith(text.slice(text.length - n))) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

export function createStopMatcher(stops: string[]): StopMatcher {
  const active = stops.filter((s) => s.length > 0);
  let pending = "";
  // pending[0..unchecked) came from pushes that do not stop: a match must end after it
  let unchecked = 0;
  let matched: string | null = null;
  return {
    push(chunk, check = true) {
      pending += chunk;
      if (!check) unchecked = pending.length;
      let first = -1;
      if (check) {
        for (const stop of active) {
          const at = pending.indexOf(stop, Math.max(0, unchecked - stop.length + 1));
          if (at !== -1 && (first === -1 || at < first)) {
            first = at;
            matched = stop;
          }
        }
      }
      if (first !== -1) {
        const text = pending.slice(0, first);
        pending = "";
        unchecked = 0;
        return { text, stopped: true };
      }
      const hold = heldBackLength(pending, active);
      const text = pending.slice(0, pending.length - hold);
      pending = pending.slice(pending.length - hold);
      unchecked = Math.max(0, unchecked - text.length);
      return { text, stopped: false };
    },
    flush() {
      const text = pending;
      pending = "";
      unchecked = 0;
      return text;
    },
    matched: () => matched,
  };
}
