/** @jsxImportSource hono/jsx */
// Experiments: the tenant's routes, and one route's results: split, guardrails, SRM, per-variant numbers,
// charts over time, and the promote and stop forms.
import type { Results, Route } from "../../../../src/contracts/experiments.ts";
import { describeVerdict, verdictOf } from "../../../../src/experiments/verdict.ts";
import type { ConsoleSession } from "../session-store.ts";
import { IntervalChart, LineChart } from "./charts.tsx";
import type { ExperimentSeries } from "./experiment-series.ts";
import { ms, num, percent, when } from "./format.ts";
import { Csrf, Page } from "./layout.tsx";

export function ExperimentListPage(props: { session: ConsoleSession; routes: Route[] }) {
  return (
    <Page title="Experiments" path="/console/experiments" session={props.session}>
      {props.routes.length === 0 ? (
        <p>
          No routes yet. Create one with <code>npm run experiment -- create</code>.
        </p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Route</th>
              <th scope="col">Status</th>
              <th scope="col">Variants</th>
              <th scope="col">Winner</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {props.routes.map((r) => (
              <tr>
                <td>
                  <a href={`/console/experiments/${r.name}`}>{r.name}</a>
                </td>
                <td>{r.status}</td>
                <td>{r.config.variants.map((v) => `${v.name} → ${v.target}`).join(", ")}</td>
                <td>{r.winner ?? ""}</td>
                <td>{when(r.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}

function Srm(props: { srm: Results["srm"] }) {
  const { srm } = props;
  if (srm === null)
    return <p class="muted">Sample-ratio check: not enough live traffic under this split yet.</p>;
  const text = `Sample-ratio check over ${srm.n} requests: χ² = ${srm.chiSquare.toFixed(2)}, p = ${srm.pValue.toPrecision(3)}.`;
  return srm.alarm ? (
    <p class="alert" role="alert">
      {text} Alarm (p &lt; 0.001): the split is not serving the shares it should; do not trust these results.
    </p>
  ) : (
    <p class="notice">{text} No mismatch.</p>
  );
}

function Guardrails(props: { route: Route }) {
  const g = props.route.config.guardrails;
  if (g === null) return <p class="muted">No guardrails set.</p>;
  const limits = [
    g.maxErrorRate === undefined ? null : `error rate ≤ ${percent(g.maxErrorRate)}`,
    g.maxP95LatencyMs === undefined ? null : `p95 latency ≤ ${g.maxP95LatencyMs} ms`,
  ].filter((x) => x !== null);
  return (
    <p>
      Guardrails: {limits.join(", ")}, judged after {g.minSamples} requests per variant.
    </p>
  );
}

/** The same sentences `npm run demo:traffic` prints (src/experiments/verdict.ts), and the variant to promote. */
function Verdict(props: { results: Results }) {
  const verdict = verdictOf(props.results);
  const lines = describeVerdict(props.results, verdict);
  if (lines.length === 0) return null;
  return (
    <section aria-labelledby="verdict">
      <h2 id="verdict">Verdict</h2>
      <ul>
        {lines.map((l) => (
          <li>{l}</li>
        ))}
      </ul>
      {verdict.winner !== null ? (
        <p class="notice">{`Promote ${verdict.winner}: it beats control at 95% confidence.`}</p>
      ) : null}
    </section>
  );
}

function VariantTable(props: { results: Results }) {
  return (
    <table>
      <thead>
        <tr>
          {["Variant", "Target", "Share", "State", "Requests", "Error rate", "p50", "p95", "Tokens out"].map(
            (h) => (
              <th scope="col">{h}</th>
            ),
          )}
          <th scope="col">Feedback mean [95% CI]</th>
          <th scope="col">Diff to control [95% CI]</th>
        </tr>
      </thead>
      <tbody>
        {props.results.variants.map((v) => (
          <tr>
            <th scope="row">
              {v.variant}
              {v.variant === props.results.control ? " (control)" : ""}
            </th>
            <td>{v.target}</td>
            <td class="num">{`${(v.weight / 100).toFixed(1)}%${v.shadow ? " shadow" : ""}`}</td>
            <td>{v.state === "cut" ? `cut: ${v.cutReason ?? ""}` : "active"}</td>
            <td class="num">{v.n}</td>
            <td class="num">{percent(v.errorRate)}</td>
            <td class="num">{ms(v.latencyMs.p50)}</td>
            <td class="num">{ms(v.latencyMs.p95)}</td>
            <td class="num">{v.tokens.completion}</td>
            <td class="num">
              {num(v.feedback.mean)}
              {v.feedback.ci95 ? ` [${num(v.feedback.ci95[0])}, ${num(v.feedback.ci95[1])}]` : ""} (n=
              {v.feedback.n})
            </td>
            <td class="num">
              {v.diffToControl
                ? `${num(v.diffToControl.mean)} [${num(v.diffToControl.ci95[0])}, ${num(v.diffToControl.ci95[1])}]`
                : "–"}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Charts(props: { series: ExperimentSeries | null; results: Results }) {
  const { series } = props;
  const feedback = props.results.variants
    .filter((v) => !v.shadow)
    .map((v) => ({ name: v.variant, mean: v.feedback.mean, ci95: v.feedback.ci95, n: v.feedback.n }));
  return (
    <section aria-labelledby="charts">
      <h2 id="charts">Charts</h2>
      {series === null ? (
        <p class="muted">No traffic yet.</p>
      ) : (
        <div class="grid">
          <LineChart
            id="shares"
            title="Share of live traffic over time"
            description="Each live variant's fraction of live requests per time bucket."
            xs={series.xs}
            series={series.shares}
            yMax={1}
            format={(v) => percent(v, 0)}
          />
          <LineChart
            id="errors"
            title="Error rate over time"
            description="Fraction of each variant's requests that failed, per time bucket."
            xs={series.xs}
            series={series.errorRates}
            minTop={0.1}
            format={(v) => percent(v, 0)}
          />
          <LineChart
            id="latency"
            title="Mean latency over time"
            description="Mean request latency of each variant in milliseconds, per time bucket."
            xs={series.xs}
            series={series.latencies}
            minTop={10}
            format={(v) => ms(v)}
          />
        </div>
      )}
      <IntervalChart
        id="feedback"
        title="Feedback score means with 95% intervals"
        description="Mean feedback score in [0, 1] of each live variant; the bar spans its 95% confidence interval."
        rows={feedback}
      />
    </section>
  );
}

function Actions(props: { session: ConsoleSession; route: Route }) {
  const { route } = props;
  if (route.status === "concluded") {
    return <p>Concluded{route.winner ? `; winner ${route.winner}` : " without a winner"}.</p>;
  }
  const live = route.config.variants.filter((v) => !v.shadow);
  const action = `/console/experiments/${route.name}`;
  return (
    <>
      <form method="post" action={`${action}/promote`} class="inline">
        <Csrf session={props.session} />
        {/* The route must still be the version this page showed: a stale page cannot promote. */}
        <input type="hidden" name="routeVersion" value={String(route.version)} />
        <label>
          Variant
          <select name="variant">
            {live.map((v) => (
              <option value={v.name}>{`${v.name} (${v.target})`}</option>
            ))}
          </select>
        </label>
        <label>
          Alias to move
          <input name="alias" value="prod" required />
        </label>
        <button type="submit">Promote</button>
      </form>
      <form method="post" action={`${action}/stop`} class="inline">
        <Csrf session={props.session} />
        <input type="hidden" name="routeVersion" value={String(route.version)} />
        <button type="submit" class="danger">
          Stop without a winner
        </button>
      </form>
    </>
  );
}

export interface ExperimentPageProps {
  session: ConsoleSession;
  route: Route;
  results: Results;
  series: ExperimentSeries | null;
  notice?: string | undefined;
}

export function ExperimentPage(props: ExperimentPageProps) {
  const { route } = props;
  return (
    <Page
      title={`Experiment ${route.name}`}
      path="/console/experiments"
      session={props.session}
      notice={props.notice}
    >
      <p>
        Status <strong>{route.status}</strong>, version {route.version}, control {route.config.control},
        sticky subject from {route.config.subject}. {route.config.description ?? ""}
      </p>
      <Srm srm={props.results.srm} />
      <Guardrails route={route} />
      <h2>Variants</h2>
      <VariantTable results={props.results} />
      <Verdict results={props.results} />
      <Charts series={props.series} results={props.results} />
      <h2>Decide</h2>
      <Actions session={props.session} route={route} />
    </Page>
  );
}
