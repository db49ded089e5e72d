// Stop strings over streamed text. Text that could still turn into a stop string is held back, so a
// client never receives the beginning of a stop string that is later cut.

export interface StopResult {
  /** Text safe to send now. */
  text: string;
  /** True when a stop string was found; `text` then ends right before it. */
  stopped: boolean;
}

export interface StopMatcher {
  push(chunk: string): StopResult;
  /** The held-back tail, once generation ended for another reason. */
  flush(): string;
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
  return {
    push(chunk) {
      pending += chunk;
      let first = -1;
      for (const stop of active) {
        const at = pending.indexOf(stop);
        if (at !== -1 && (first === -1 || at < first)) first = at;
      }
      if (first !== -1) {
        const text = pending.slice(0, first);
        pending = "";
        return { text, stopped: true };
      }
      const hold = heldBackLength(pending, active);
      const text = pending.slice(0, pending.length - hold);
      pending = pending.slice(pending.length - hold);
      return { text, stopped: false };
    },
    flush() {
      const text = pending;
      pending = "";
      return text;
    },
  };
}
