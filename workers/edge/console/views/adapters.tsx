/** @jsxImportSource hono/jsx */
// Adapters: the tenant's list, and one adapter's versions (manifest facts), aliases and alias history, with
// the yank and alias-move forms.
import type { AdapterSummary, VersionRow } from "../../registry/registry-store.ts";
import type { AliasEvent } from "../queries.ts";
import type { ConsoleSession } from "../session-store.ts";
import { actor, bytes, when } from "./format.ts";
import { Csrf, Page } from "./layout.tsx";

export function AdapterListPage(props: { session: ConsoleSession; adapters: AdapterSummary[] }) {
  return (
    <Page title="Adapters" path="/console/adapters" session={props.session}>
      {props.adapters.length === 0 ? (
        <p>
          No adapters yet. Publish one with{" "}
          <code>npm run publish-adapter -- ./my-adapter --name my-adapter</code>.
        </p>
      ) : (
        <table>
          <caption class="muted">Adapters of tenant {props.session.tenant}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Base model</th>
              <th scope="col" class="num">
                Latest
              </th>
              <th scope="col">Aliases</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {props.adapters.map((a) => (
              <tr>
                <td>
                  <a href={`/console/adapters/${a.name}`}>{a.name}</a>
                </td>
                <td>{a.baseModel}</td>
                <td class="num">{a.latest ?? "all yanked"}</td>
                <td>
                  {Object.entries(a.aliases)
                    .map(([alias, v]) => `${alias} → ${v}`)
                    .join(", ")}
                </td>
                <td>{when(a.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}

function Metrics(props: { metrics: Record<string, number> | undefined }) {
  const entries = Object.entries(props.metrics ?? {});
  if (entries.length === 0) return <span class="muted">none</span>;
  return <span>{entries.map(([k, v]) => `${k}=${Number(v.toPrecision(4))}`).join(", ")}</span>;
}

function VersionRowView(props: {
  session: ConsoleSession;
  row: VersionRow;
  aliases: string[];
  names: Map<string, string>;
}) {
  const { row } = props;
  const m = row.manifest;
  return (
    <tr id={`v${row.version}`}>
      <th scope="row" class="num">
        {row.version}
      </th>
      <td>
        {when(row.created_at)}
        <br />
        <span class="muted">by {actor(props.names, m.createdBy)}</span>
      </td>
      <td class="num">
        {m.maxRank}
        {m.rslora ? " (rsLoRA)" : ""}
      </td>
      <td>{m.targetModules.join(", ")}</td>
      <td>{m.baseModel.id}</td>
      <td class="num">
        {bytes(m.sizeBytes)} <span class="muted">{m.dtype}</span>
      </td>
      <td>
        <Metrics metrics={m.metrics} />
      </td>
      <td>{props.aliases.join(", ")}</td>
      <td>
        {row.yanked_at !== null ? (
          <span>yanked {when(row.yanked_at)}</span>
        ) : (
          <form
            method="post"
            action={`/console/adapters/${row.name}/versions/${row.version}/yank`}
            class="inline"
          >
            <Csrf session={props.session} />
            <button type="submit" class="danger" aria-label={`Yank version ${row.version}`}>
              Yank
            </button>
          </form>
        )}
      </td>
    </tr>
  );
}

function VersionsTable(props: {
  session: ConsoleSession;
  versions: VersionRow[];
  aliases: Record<string, number>;
  names: Map<string, string>;
}) {
  const aliasesAt = (v: number) =>
    Object.entries(props.aliases)
      .filter(([, at]) => at === v)
      .map(([alias]) => alias);
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Version</th>
          <th scope="col">Published</th>
          <th scope="col" class="num">
            Rank
          </th>
          <th scope="col">Targets</th>
          <th scope="col">Base model</th>
          <th scope="col" class="num">
            Size
          </th>
          <th scope="col">Metrics</th>
          <th scope="col">Aliases</th>
          <th scope="col">State</th>
        </tr>
      </thead>
      <tbody>
        {[...props.versions].reverse().map((row) => (
          <VersionRowView
            session={props.session}
            row={row}
            aliases={aliasesAt(row.version)}
            names={props.names}
          />
        ))}
      </tbody>
    </table>
  );
}

function VersionSelect(props: { id: string; versions: VersionRow[]; selected?: number }) {
  return (
    <select name="version" id={props.id}>
      {props.versions
        .filter((v) => v.yanked_at === null)
        .reverse()
        .map((v) => (
          <option value={String(v.version)} selected={v.version === props.selected}>
            {v.version}
          </option>
        ))}
    </select>
  );
}

function AliasForms(props: {
  session: ConsoleSession;
  name: string;
  aliases: Record<string, number>;
  versions: VersionRow[];
}) {
  const action = `/console/adapters/${props.name}/aliases`;
  return (
    <>
      <table>
        <thead>
          <tr>
            <th scope="col">Alias</th>
            <th scope="col" class="num">
              Version
            </th>
            <th scope="col">Move to</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(props.aliases).map(([alias, version]) => (
            <tr>
              <th scope="row">{alias}</th>
              <td class="num">{version}</td>
              <td>
                <form method="post" action={action} class="inline">
                  <Csrf session={props.session} />
                  <input type="hidden" name="alias" value={alias} />
                  {/* Compare-and-set: the move fails if someone moved the alias since this page was drawn. */}
                  <input type="hidden" name="expected" value={String(version)} />
                  <label for={`move-${alias}`}>
                    Version for {alias}
                    <VersionSelect id={`move-${alias}`} versions={props.versions} selected={version} />
                  </label>
                  <button type="submit">Move {alias}</button>
                </form>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form method="post" action={action} class="inline">
        <Csrf session={props.session} />
        <input type="hidden" name="expected" value="none" />
        <label>
          New alias
          <input name="alias" required pattern="[a-z0-9][a-z0-9._\-]{0,63}" />
        </label>
        <label for="new-alias-version">
          Version
          <VersionSelect id="new-alias-version" versions={props.versions} />
        </label>
        <button type="submit">Create alias</button>
      </form>
    </>
  );
}

function History(props: { events: AliasEvent[]; names: Map<string, string> }) {
  if (props.events.length === 0) return <p class="muted">No alias moves yet.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Alias</th>
          <th scope="col">Change</th>
          <th scope="col">Who</th>
        </tr>
      </thead>
      <tbody>
        {props.events.map((e) => (
          <tr>
            <td>{when(e.created_at)}</td>
            <td>{e.target}</td>
            <td>{describeMove(e.details)}</td>
            <td>{actor(props.names, e.actor)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function describeMove(d: Record<string, unknown>): string {
  const parts = [`to version ${String(d.version ?? "?")}`];
  if (typeof d.expected === "number") parts.push(`from ${d.expected}`);
  if (typeof d.previous === "number") parts.push(`from ${d.previous}`);
  if (typeof d.reason === "string") parts.push(`(${d.reason})`);
  return parts.join(" ");
}

export interface AdapterPageProps {
  session: ConsoleSession;
  adapter: AdapterSummary;
  versions: VersionRow[];
  history: AliasEvent[];
  names: Map<string, string>;
  notice?: string | undefined;
}

export function AdapterPage(props: AdapterPageProps) {
  const { adapter } = props;
  return (
    <Page
      title={`Adapter ${adapter.name}`}
      path="/console/adapters"
      session={props.session}
      notice={props.notice}
    >
      <p>
        Base model <strong>{adapter.baseModel}</strong>; {props.versions.length} version(s).{" "}
        {adapter.description && <span>{adapter.description}</span>}
      </p>
      <h2>Versions</h2>
      <VersionsTable
        session={props.session}
        versions={props.versions}
        aliases={adapter.aliases}
        names={props.names}
      />
      <h2>Aliases</h2>
      <AliasForms
        session={props.session}
        name={adapter.name}
        aliases={adapter.aliases}
        versions={props.versions}
      />
      <h2>Alias history</h2>
      <History events={props.history} names={props.names} />
    </Page>
  );
}
