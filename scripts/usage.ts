// `npm run usage -- [--from 2026-05-01] [--to 2026-06-01] [--group-by adapter|key|route|day] [--tenant t]
// [--json | --csv]`: a tenant's usage from GET /admin/usage, as a table, JSON or CSV. An admin key reads its
// own tenant; the operator token reads one tenant (--tenant) or all. Endpoint and token: --endpoint/--token
// or EDGE_URL/EDGE_TOKEN. Exit codes: 2 for a flag mistake, 1 for a refusal by the edge, 3 when the edge
// cannot be reached (cli/report.ts).
import { defineCommand } from "citty";
import { EdgeError, parseEdgeAnswer } from "../cli/edge-client.ts";
import { runChecked } from "../cli/flags.ts";
import { formatIssues } from "../src/contracts/issues.ts";
import { type UsageReport, UsageReportSchema, UsageQuerySchema, usageCsv } from "../src/contracts/usage.ts";
import { AppError } from "../src/errors.ts";

function table(report: UsageReport): string {
  const dim = (l: UsageReport["data"][number]): string => {
    switch (report.group_by) {
      case "adapter":
        return l.adapter ?? "(model not found)";
      case "key":
        return `${l.key?.name ?? "?"} (${l.key?.prefix ?? l.key?.id ?? "?"})`;
      case "route":
        return l.route === null || l.route === undefined ? "(no route)" : `${l.route}/${l.variant ?? ""}`;
      case "day":
        return l.day ?? "";
    }
    return "";
  };
  const header = [
    "tenant",
    report.group_by,
    "line",
    "requests",
    "errors",
    "cancelled",
    "cold",
    "prompt",
    "completion",
    "total",
    "mean ms",
  ];
  const rows = report.data.map((l) => [
    l.tenant,
    dim(l),
    l.shadow ? "shadow" : "live",
    String(l.requests),
    String(l.errors),
    String(l.cancelled),
    String(l.coldLoads),
    String(l.promptTokens),
    String(l.completionTokens),
    String(l.totalTokens),
    l.meanLatencyMs === null ? "-" : l.meanLatencyMs.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= 3 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  const totals = report.data.reduce((n, l) => n + l.totalTokens, 0);
  return [
    `usage from ${report.from} to ${report.to}, by ${report.group_by}`,
    line(header),
    ...rows.map(line),
    `${report.data.length} line(s), ${totals} tokens`,
  ].join("\n");
}

const command = defineCommand({
  meta: { name: "usage", description: "Tokens and requests per adapter, key, route or day, from the edge" },
  args: {
    endpoint: { type: "string", description: "edge URL (or EDGE_URL)" },
    token: { type: "string", description: "admin API key, or the operator token (or EDGE_TOKEN)" },
    from: {
      type: "string",
      description: "start: YYYY-MM-DD or ISO 8601 (default: the month's first day, UTC)",
    },
    to: { type: "string", description: "end, exclusive: YYYY-MM-DD or ISO 8601 (default: now)" },
    "group-by": { type: "string", default: "adapter", description: "adapter | key | route | day" },
    tenant: { type: "string", description: "operator only: one tenant (default: every tenant)" },
    json: { type: "boolean", default: false, description: "print the report as JSON" },
    csv: { type: "boolean", default: false, description: "print the report as CSV" },
  },
  async run({ args }) {
    if (args.json && args.csv) {
      throw new AppError("invalid_request", "--json and --csv: pick one output format; got both", {
        param: "csv",
      });
    }
    const query: Record<string, string> = { group_by: args["group-by"] };
    if (args.from !== undefined) query.from = args.from;
    if (args.to !== undefined) query.to = args.to;
    if (args.tenant !== undefined) query.tenant = args.tenant;
    // The edge's own query schema, so a flag mistake is refused here (exit 2) with the edge's wording.
    const checked = UsageQuerySchema.safeParse(query, { reportInput: true });
    if (!checked.success) {
      const problems = formatIssues(checked.error).map((p) =>
        p.replace(/^group_by/, "--group-by").replace(/^(from|to|tenant)/, "--$1"),
      );
      throw new AppError("invalid_request", problems.join("; "), { param: "argv", details: problems });
    }
    const endpoint = args.endpoint ?? process.env.EDGE_URL;
    const token = args.token ?? process.env.EDGE_TOKEN;
    if (!endpoint)
      throw new AppError("invalid_request", "--endpoint: pass --endpoint or set EDGE_URL", {
        param: "endpoint",
      });
    if (!token)
      throw new AppError("invalid_request", "--token: pass --token or set EDGE_TOKEN", { param: "token" });
    const url = `${endpoint.replace(/\/+$/, "")}/admin/usage?${new URLSearchParams(query)}`;
    let res: Response;
    try {
      res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    } catch (error) {
      throw new EdgeError(0, `${endpoint}: the edge cannot be reached (${(error as Error).message})`);
    }
    const report = await parseEdgeAnswer(res, UsageReportSchema, "GET /admin/usage");
    if (args.json) console.log(JSON.stringify(report, null, 2));
    else if (args.csv) process.stdout.write(usageCsv(report));
    else console.log(table(report));
  },
});

await runChecked(command);
