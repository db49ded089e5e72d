// What `npm run demo:traffic` does with the edge, apart from its flags: send each held-out ticket through a
// route as its own user, score the answer against the ticket's label and post that as feedback, and render
// the route's results (per-variant accuracy, the difference to control, SRM, guardrails) with the verdict.
// It talks to the edge only through its public API, as any client would.
import type { Results, Route } from "../../src/contracts/experiments.ts";
import { describeVerdict, type Verdict } from "../../src/experiments/verdict.ts";
import { SYSTEM_CLASSIFY, type Ticket } from "../demo-data/tickets.ts";

export interface TrafficTarget {
  edgeUrl: string;
  key: string;
  route: string;
}

export interface Answer {
  ticket: Ticket;
  user: string;
  status: number;
  variant: string | null;
  adapter: string | null;
  text: string;
  correct: boolean;
  /** Whether the edge took the feedback (it needs the request's exposure, written just after the answer). */
  recorded: boolean;
}

const post = (t: TrafficTarget, path: string, body: unknown) =>
  fetch(`${t.edgeUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${t.key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** The feedback for one answer; the exposure lands a moment after the response, so a 404 is tried again. */
async function feedback(t: TrafficTarget, requestId: string, correct: boolean): Promise<boolean> {
  const body = { request_id: requestId, score: correct ? 1 : 0, label: correct ? "correct" : "wrong" };
  for (let attempt = 0; attempt < 40; attempt++) {
    const res = await post(t, "/v1/feedback", body);
    const text = await res.text();
    if (res.ok) return true;
    if (res.status !== 404)
      throw new Error(`POST /v1/feedback answered ${res.status}: ${text.slice(0, 300)}`);
    await new Promise((r) => setTimeout(r, 50 * Math.min(attempt + 1, 10)));
  }
  return false;
}

/** One ticket through the route as `user`: the category asked for, the answer scored, the feedback posted. */
export async function sendTicket(t: TrafficTarget, ticket: Ticket, user: string): Promise<Answer> {
  const res = await post(t, "/v1/chat/completions", {
    model: t.route,
    user,
    messages: [
      { role: "system", content: SYSTEM_CLASSIFY },
      { role: "user", content: ticket.text },
    ],
    max_tokens: 12,
    temperature: 0,
  });
  const raw = await res.text();
  const base = {
    ticket,
    user,
    status: res.status,
    variant: res.headers.get("x-variant"),
    adapter: res.headers.get("x-adapter"),
  };
  if (!res.ok) return { ...base, text: raw.slice(0, 300), correct: false, recorded: false };
  const text = ((JSON.parse(raw) as { choices?: { message?: { content?: string } }[] }).choices?.[0]?.message
    ?.content ?? "") as string;
  const correct = text.trim().toLowerCase() === ticket.category;
  const requestId = res.headers.get("x-request-id");
  const recorded = requestId === null ? false : await feedback(t, requestId, correct);
  return { ...base, text, correct, recorded };
}

/** Runs `work` over `items` with at most `limit` in flight, in order of the items. */
export async function pooled<T, R>(items: T[], limit: number, work: (item: T, i: number) => Promise<R>) {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

const fixed = (x: number | null, digits = 3) => (x === null ? "–" : x.toFixed(digits));
const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(3)}`;
const pct = (x: number | null) => (x === null ? "–" : `${(x * 100).toFixed(1)}%`);

/** The results as a table, then SRM, guardrails and the verdict: what the console's experiment page shows. */
export function renderResults(
  route: Route,
  results: Results,
  verdict: Verdict,
  adapters: Map<string, Set<string>>,
) {
  const rows = results.variants
    .filter((v) => !v.shadow)
    .map((v) => {
      const served = [...(adapters.get(v.variant) ?? [])].sort().join(", ");
      const acc = v.feedback.ci95
        ? `${fixed(v.feedback.mean)} [${fixed(v.feedback.ci95[0])}, ${fixed(v.feedback.ci95[1])}]`
        : "–";
      const diff = v.diffToControl
        ? `${signed(v.diffToControl.mean)} [${signed(v.diffToControl.ci95[0])}, ${signed(v.diffToControl.ci95[1])}]`
        : v.variant === results.control
          ? "(control)"
          : "–";
      return [
        v.variant,
        `${v.target}${served ? ` = ${served}` : ""}`,
        `${(v.weight / 100).toFixed(0)}%`,
        String(v.n),
        String(v.feedback.n),
        acc,
        diff,
        pct(v.errorRate),
        v.latencyMs.p95 === null ? "–" : `${Math.round(v.latencyMs.p95)} ms`,
        v.state === "cut" ? `cut: ${v.cutReason ?? ""}` : "active",
      ];
    });
  const header = [
    "variant",
    "target",
    "share",
    "requests",
    "feedback",
    "accuracy [95% CI]",
    "diff to control [95% CI]",
    "errors",
    "p95",
    "state",
  ];
  const widths = header.map((h, k) => Math.max(h.length, ...rows.map((r) => (r[k] as string).length)));
  const line = (cells: string[]) =>
    `  ${cells
      .map((c, k) => c.padEnd(widths[k] as number))
      .join("  ")
      .trimEnd()}`;
  const srm = results.srm;
  const g = route.config.guardrails;
  const limits = g
    ? [
        g.maxErrorRate === undefined ? null : `error rate ≤ ${pct(g.maxErrorRate)}`,
        g.maxP95LatencyMs === undefined ? null : `p95 latency ≤ ${g.maxP95LatencyMs} ms`,
      ].filter((x) => x !== null)
    : [];
  const cut = results.variants.filter((v) => v.state === "cut").map((v) => v.variant);
  return [
    line(header),
    ...rows.map(line),
    srm === null
      ? "  sample ratio: not enough traffic under this split yet"
      : `  sample ratio: χ² = ${srm.chiSquare.toFixed(2)}, p = ${srm.pValue.toPrecision(3)} over ${srm.n} requests: ${srm.alarm ? "MISMATCH (p < 0.001), do not trust these results" : "no mismatch"}`,
    g === null
      ? "  guardrails: none set"
      : `  guardrails: ${limits.join(", ")}, judged after ${g.minSamples} requests per variant; ${cut.length === 0 ? "no variant cut" : `cut: ${cut.join(", ")}`}`,
    "",
    ...describeVerdict(results, verdict).map((l) => `verdict: ${l}`),
  ];
}
