/** @jsxImportSource hono/jsx */
// Runners: each runner of the pool by position (never its URL), its load and cache counters, and which of
// this tenant's adapter versions it holds with their traffic, matched by content id (the runner's
// `adapter_id` label), never by the runner's display labels, which repeat across tenants. Other tenants'
// adapters are only counted.
import type { TenantVersion } from "../queries.ts";
import type { RunnerReport } from "../runner-probe.ts";
import type { ConsoleSession } from "../session-store.ts";
import { bytes, when } from "./format.ts";
import { Page } from "./layout.tsx";

/** A fleet member's membership, as D1 holds it (static RUNNERS entries have none). */
export interface MemberView {
  id: string;
  kind: "runner" | "vllm";
  baseModel: string;
  capacity: number;
  maxLoraRank: number;
  joinedAt: string;
  leaseUntil: string;
  drainingAt: string | null;
}

type Report = RunnerReport & { member?: MemberView | null };

function Membership(props: { member: MemberView | null | undefined }) {
  const m = props.member;
  if (m === null || m === undefined) return <p class="muted">Static runner (RUNNER_URL / RUNNERS).</p>;
  return (
    <>
      {m.drainingAt !== null && (
        <p class="alert" role="status">
          Draining since {when(m.drainingAt)}: takes no new requests, leaves when its running ones are done.
        </p>
      )}
      <table>
        <tbody>
          <tr>
            <th scope="row">Member</th>
            <td>
              {m.id} ({m.kind === "vllm" ? "vLLM via sidecar" : "runner"})
            </td>
          </tr>
          <tr>
            <th scope="row">Base model</th>
            <td>{m.baseModel}</td>
          </tr>
          <tr>
            <th scope="row">Capacity, max LoRA rank</th>
            <td>
              {m.capacity}, {m.maxLoraRank}
            </td>
          </tr>
          <tr>
            <th scope="row">Joined</th>
            <td>{when(m.joinedAt)}</td>
          </tr>
          <tr>
            <th scope="row">Lease until</th>
            <td>{when(m.leaseUntil)}</td>
          </tr>
        </tbody>
      </table>
    </>
  );
}

/** A counter never incremented has no sample line: once /metrics answered, missing means 0. */
function metric(r: RunnerReport, name: string): string {
  if (r.metrics.size === 0) return "–";
  return String(Math.round(r.metrics.get(name) ?? 0));
}

/** Mean generation speed since the runner started: one scrape has counters, not rates. */
function tokensPerSecond(r: RunnerReport): string {
  const tokens = r.metrics.get("runner_generated_tokens_total");
  const uptime = r.health?.uptimeS;
  if (tokens === undefined || uptime === undefined || uptime <= 0) return "–";
  return (tokens / uptime).toFixed(2);
}

/** A per-adapter counter, or "–" when the runner names no series for that content id (e.g. an older runner). */
function adapterMetric(r: RunnerReport, adapterId: string, name: string): string {
  const values = r.byAdapter.get(adapterId);
  return values === undefined ? "–" : String(Math.round(values.get(name) ?? 0));
}

function Resident(props: { report: RunnerReport; versions: TenantVersion[] }) {
  const mine = props.report.resident.flatMap((a) => {
    const labels = props.versions
      .filter((v) => v.adapterId === a.adapterId)
      .map((v) => `${v.name}@${v.version}`);
    return labels.length === 0 ? [] : [{ a, labels }];
  });
  const others = props.report.resident.length - mine.length;
  return (
    <>
      {mine.length === 0 ? (
        <p class="muted">Holds none of your adapters.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Adapter</th>
              <th scope="col" class="num">
                Slot
              </th>
              <th scope="col" class="num">
                Rank
              </th>
              <th scope="col" class="num">
                Size
              </th>
              <th scope="col">Pinned</th>
              <th scope="col" class="num">
                In flight
              </th>
              <th scope="col" class="num">
                Requests
              </th>
              <th scope="col" class="num">
                Prompt tokens
              </th>
              <th scope="col" class="num">
                Generated tokens
              </th>
              <th scope="col">Loaded</th>
              <th scope="col">Last used</th>
            </tr>
          </thead>
          <tbody>
            {mine.map(({ a, labels }) => (
              <tr>
                <th scope="row">{labels.join(", ")}</th>
                <td class="num">{a.slot}</td>
                <td class="num">{a.rank}</td>
                <td class="num">{bytes(a.sizeBytes)}</td>
                <td>{a.pinned ? "yes" : "no"}</td>
                <td class="num">{a.inFlight}</td>
                <td class="num">{adapterMetric(props.report, a.adapterId, "runner_requests_total")}</td>
                <td class="num">{adapterMetric(props.report, a.adapterId, "runner_prompt_tokens_total")}</td>
                <td class="num">
                  {adapterMetric(props.report, a.adapterId, "runner_generated_tokens_total")}
                </td>
                <td>{when(a.loadedAt)}</td>
                <td>{when(a.lastUsedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p class="muted">
        {others} slot(s) held by other adapters; {props.report.maxSlots ?? "?"} slots in all.
      </p>
    </>
  );
}

function RunnerCard(props: { report: Report; versions: TenantVersion[] }) {
  const r = props.report;
  const h = r.health;
  return (
    <section class="card" aria-labelledby={`runner-${r.index}`}>
      <h2 id={`runner-${r.index}`}>Runner {r.index}</h2>
      {r.problem && (
        <p class="alert" role="alert">
          Runner {r.index} {r.problem}.
        </p>
      )}
      {h && (
        <p>
          {h.status}, model {h.model} on {h.device} ({h.backend}), up {Math.round(h.uptimeS)} s
        </p>
      )}
      <table>
        <tbody>
          <tr>
            <th scope="row">Queue depth</th>
            <td class="num">{h?.queueDepth ?? "–"}</td>
          </tr>
          <tr>
            <th scope="row">Running sequences</th>
            <td class="num">{metric(r, "runner_running_sequences")}</td>
          </tr>
          <tr>
            <th scope="row">Tokens/s (mean since start)</th>
            <td class="num">{tokensPerSecond(r)}</td>
          </tr>
          <tr>
            <th scope="row">Requests</th>
            <td class="num">{metric(r, "runner_requests_total")}</td>
          </tr>
          <tr>
            <th scope="row">Adapter loads</th>
            <td class="num">{metric(r, "runner_adapter_loads_total")}</td>
          </tr>
          <tr>
            <th scope="row">Adapter evictions</th>
            <td class="num">{metric(r, "runner_adapter_evictions_total")}</td>
          </tr>
        </tbody>
      </table>
      <h3>Your adapters on runner {r.index}</h3>
      <Resident report={r} versions={props.versions} />
      <Membership member={r.member} />
    </section>
  );
}

export function RunnersPage(props: {
  session: ConsoleSession;
  reports: Report[];
  versions: TenantVersion[];
}) {
  return (
    <Page title="Runners" path="/console/runners" session={props.session}>
      <p>
        The runner pool this edge forwards to, read now: static runners, then the fleet's members with their
        leases. Counters count every tenant's traffic.
      </p>
      {props.reports.map((r) => (
        <RunnerCard report={r} versions={props.versions} />
      ))}
    </Page>
  );
}
