/** @jsxImportSource hono/jsx */
// Usage: a table per adapter over the range (shadow copies on lines of their own, as they are billed), one
// chart per adapter of its tokens per hour or day, and the tenant's limits and monthly budget.
import type { TenantInfo } from "../../../../src/contracts/limits.ts";
import type { UsageLine } from "../../../../src/contracts/usage.ts";
import type { SeriesPoint } from "../../usage/usage-store.ts";
import type { ConsoleSession } from "../session-store.ts";
import { LineChart, type Series } from "./charts.tsx";
import { ms, percent } from "./format.ts";
import { Page } from "./layout.tsx";

export const RANGES = {
  "24h": { label: "Last 24 hours", count: 24, by: "hour" },
  "7d": { label: "Last 7 days", count: 7, by: "day" },
  "30d": { label: "Last 30 days", count: 30, by: "day" },
} as const;
export type RangeName = keyof typeof RANGES;

const adapterName = (a: string | null | undefined) => (a ? a : "(model not found)");
const count = (n: number) => n.toLocaleString("en-US");
const limit = (n: number | null, unit: string) => (n === null ? "none" : `${count(n)} ${unit} per minute`);

function series(points: SeriesPoint[], adapter: string, labels: string[]): Series[] {
  const mine = points.filter((p) => p.adapter === adapter);
  const out: Series[] = [];
  for (const shadow of [false, true]) {
    const of = mine.filter((p) => p.shadow === shadow);
    if (of.length === 0) continue;
    const byBucket = new Map(of.map((p) => [p.bucket, p.tokens]));
    out.push({ name: shadow ? "shadow tokens" : "tokens", values: labels.map((l) => byBucket.get(l) ?? 0) });
  }
  return out;
}

export function UsagePage(props: {
  session: ConsoleSession;
  range: RangeName;
  labels: string[];
  points: SeriesPoint[];
  lines: UsageLine[];
  tenant: TenantInfo;
  monthTokens: number;
}) {
  const { tenant } = props;
  const adapters = [...new Set(props.points.map((p) => p.adapter))].sort();
  const budget = tenant.monthlyTokenBudget;
  return (
    <Page title="Usage" path="/console/usage" session={props.session}>
      <h1>Usage</h1>
      <p>
        Range:{" "}
        {(Object.keys(RANGES) as RangeName[]).map((r, i) => (
          <>
            {i > 0 ? " · " : ""}
            <a href={`/console/usage?range=${r}`} aria-current={r === props.range ? "page" : undefined}>
              {RANGES[r].label}
            </a>
          </>
        ))}
      </p>
      <section aria-labelledby="limits" class="card">
        <h2 id="limits">Limits and budget</h2>
        <dl>
          <dt>Tenant requests</dt>
          <dd>{limit(tenant.limits.requestsPerMinute, "requests")}</dd>
          <dt>Tenant tokens</dt>
          <dd>{limit(tenant.limits.tokensPerMinute, "tokens")}</dd>
          <dt>Tokens this month (UTC)</dt>
          <dd>
            {budget === null
              ? `${count(props.monthTokens)} (no monthly budget)`
              : `${count(props.monthTokens)} of ${count(budget)} (${percent(props.monthTokens / budget)})`}
          </dd>
        </dl>
      </section>
      <section aria-labelledby="by-adapter">
        <h2 id="by-adapter">By adapter: {RANGES[props.range].label.toLowerCase()}</h2>
        {props.lines.length === 0 ? (
          <p class="muted">No inference in this range.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Adapter</th>
                <th scope="col">Line</th>
                <th scope="col" class="num">
                  Requests
                </th>
                <th scope="col" class="num">
                  Errors
                </th>
                <th scope="col" class="num">
                  Prompt tokens
                </th>
                <th scope="col" class="num">
                  Completion tokens
                </th>
                <th scope="col" class="num">
                  Cold loads
                </th>
                <th scope="col" class="num">
                  Mean latency
                </th>
              </tr>
            </thead>
            <tbody>
              {props.lines.map((l) => (
                <tr>
                  <th scope="row">{adapterName(l.adapter)}</th>
                  <td>{l.shadow ? "shadow" : "live"}</td>
                  <td class="num">{count(l.requests)}</td>
                  <td class="num">{count(l.errors)}</td>
                  <td class="num">{count(l.promptTokens)}</td>
                  <td class="num">{count(l.completionTokens)}</td>
                  <td class="num">{count(l.coldLoads)}</td>
                  <td class="num">{ms(l.meanLatencyMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section aria-labelledby="charts">
        <h2 id="charts">Tokens per {RANGES[props.range].by}</h2>
        {adapters.map((adapter, i) => (
          <LineChart
            id={`usage-${i}`}
            title={adapterName(adapter)}
            description={`Prompt plus completion tokens of ${adapterName(adapter)} per ${RANGES[props.range].by} (UTC), ${RANGES[props.range].label.toLowerCase()}`}
            xs={props.labels}
            series={series(props.points, adapter, props.labels)}
            minTop={10}
            format={(v) => count(Math.round(v))}
          />
        ))}
      </section>
    </Page>
  );
}
