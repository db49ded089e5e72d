/** @jsxImportSource hono/jsx */
// Charts drawn on the server as SVG: lines over time, and means with 95% intervals. Colours come from
// presentation attributes (not style), so the console's CSP needs no inline styles. Each chart has a title
// and description for screen readers, and its numbers in a table under "Data".
import { PALETTE } from "../styles.ts";

const W = 440;
const H = 200;
const PAD = { left: 52, right: 12, top: 10, bottom: 28 };

export interface Series {
  name: string;
  /** One value per x position; null where there is nothing to plot. */
  values: (number | null)[];
}

export function seriesColor(i: number): string {
  return PALETTE.series[i % PALETTE.series.length] as string;
}

function Legend(props: { names: string[] }) {
  return (
    <ul class="legend">
      {props.names.map((name, i) => (
        <li>
          <svg width="12" height="12" aria-hidden="true" class="swatch">
            <rect width="12" height="12" fill={seriesColor(i)} />
          </svg>
          {name}
        </li>
      ))}
    </ul>
  );
}

function DataTable(props: { xs: string[]; series: Series[]; format: (v: number) => string }) {
  return (
    <details>
      <summary>Data</summary>
      <table>
        <thead>
          <tr>
            <th scope="col">Time</th>
            {props.series.map((s) => (
              <th scope="col">{s.name}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.xs.map((x, i) => (
            <tr>
              <th scope="row">{x}</th>
              {props.series.map((s) => {
                const v = s.values[i];
                return <td class="num">{v == null ? "–" : props.format(v)}</td>;
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

function path(values: (number | null)[], x: (i: number) => number, y: (v: number) => number): string {
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null) {
      pen = false;
      return;
    }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  });
  return d;
}

export interface LineChartProps {
  id: string;
  title: string;
  description: string;
  /** Label of each x position (times). */
  xs: string[];
  series: Series[];
  /** Top of the y axis; defaults to the largest value. */
  yMax?: number;
  /** The y axis reaches at least this high, so a flat line at zero still has a readable scale. */
  minTop?: number;
  format: (v: number) => string;
}

export function LineChart(props: LineChartProps) {
  const all = props.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const yMax = props.yMax ?? Math.max(props.minTop ?? 1e-9, ...all);
  const n = Math.max(props.xs.length, 1);
  const x = (i: number) =>
    PAD.left + (n === 1 ? (W - PAD.left - PAD.right) / 2 : (i / (n - 1)) * (W - PAD.left - PAD.right));
  const y = (v: number) => PAD.top + (1 - v / yMax) * (H - PAD.top - PAD.bottom);
  const ticks = [0, yMax / 2, yMax];
  return (
    <figure>
      <figcaption id={`${props.id}-title`}>{props.title}</figcaption>
      <Legend names={props.series.map((s) => s.name)} />
      <svg
        viewBox={`0 0 ${W} ${H}`}
        width={W}
        height={H}
        role="img"
        aria-labelledby={`${props.id}-title ${props.id}-desc`}
      >
        <title>{props.title}</title>
        <desc id={`${props.id}-desc`}>{props.description}</desc>
        {ticks.map((t) => (
          <g>
            <line
              x1={PAD.left}
              x2={W - PAD.right}
              y1={y(t)}
              y2={y(t)}
              stroke={PALETTE.border}
              stroke-width="0.5"
            />
            <text x={PAD.left - 6} y={y(t) + 4} text-anchor="end">
              {props.format(t)}
            </text>
          </g>
        ))}
        <text x={PAD.left} y={H - 8}>
          {props.xs[0] ?? ""}
        </text>
        <text x={W - PAD.right} y={H - 8} text-anchor="end">
          {props.xs.length > 1 ? props.xs.at(-1) : ""}
        </text>
        {props.series.map((s, i) => (
          <g>
            <path d={path(s.values, x, y)} fill="none" stroke={seriesColor(i)} stroke-width="2" />
            {s.values.map((v, j) =>
              v === null ? null : <circle cx={x(j)} cy={y(v)} r="3" fill={seriesColor(i)} />,
            )}
          </g>
        ))}
      </svg>
      <DataTable xs={props.xs} series={props.series} format={props.format} />
    </figure>
  );
}

export interface Interval {
  name: string;
  mean: number | null;
  ci95: readonly [number, number] | null;
  n: number;
}

/** Feedback means (scores in [0, 1]) with their 95% intervals, one row per variant. */
export function IntervalChart(props: { id: string; title: string; description: string; rows: Interval[] }) {
  const rowH = 28;
  const h = PAD.top + props.rows.length * rowH + PAD.bottom;
  const left = 120;
  const x = (v: number) => left + Math.min(1, Math.max(0, v)) * (W - left - PAD.right);
  return (
    <figure>
      <figcaption id={`${props.id}-title`}>{props.title}</figcaption>
      <svg
        viewBox={`0 0 ${W} ${h}`}
        width={W}
        height={h}
        role="img"
        aria-labelledby={`${props.id}-title ${props.id}-desc`}
      >
        <title>{props.title}</title>
        <desc id={`${props.id}-desc`}>{props.description}</desc>
        {[0, 0.25, 0.5, 0.75, 1].map((t) => (
          <g>
            <line
              x1={x(t)}
              x2={x(t)}
              y1={PAD.top}
              y2={h - PAD.bottom}
              stroke={PALETTE.border}
              stroke-width="0.5"
            />
            <text x={x(t)} y={h - 8} text-anchor="middle">
              {t.toFixed(2)}
            </text>
          </g>
        ))}
        {props.rows.map((r, i) => {
          const cy = PAD.top + i * rowH + rowH / 2;
          return (
            <g>
              <text x={left - 8} y={cy + 4} text-anchor="end">
                {`${r.name} (n=${r.n})`}
              </text>
              {r.ci95 && (
                <line
                  x1={x(r.ci95[0])}
                  x2={x(r.ci95[1])}
                  y1={cy}
                  y2={cy}
                  stroke={seriesColor(i)}
                  stroke-width="3"
                />
              )}
              {r.mean !== null && <circle cx={x(r.mean)} cy={cy} r="5" fill={seriesColor(i)} />}
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
