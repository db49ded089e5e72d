// README.md's "OpenAI and vLLM request fields" table says which request fields each endpoint supports or
// refuses. This holds it to the schemas: a refused row is refused with its param, a supported row parses,
// and no refused field is missing from the table.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { formatPath } from "../../src/contracts/issues.ts";
import { ChatCompletionRequestSchema, CompletionRequestSchema } from "../../src/contracts/openai.ts";
import { REFUSED_FIELDS } from "../../src/contracts/openai-refusals.ts";
import { type Endpoint, FIELD_CASES, paramOf, requestFor } from "../helpers/openai-field-cases.ts";

const SCHEMAS = { chat: ChatCompletionRequestSchema, completions: CompletionRequestSchema } as const;
const ENDPOINTS = ["chat", "completions"] as const;

interface Row {
  field: string;
  endpoints: Endpoint[];
  status: string;
}

function readTable(): Row[] {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("\n## OpenAI and vLLM request fields\n");
  if (start < 0) throw new Error('README.md has no "## OpenAI and vLLM request fields" section');
  const end = readme.indexOf("\n## ", start + 1);
  const lines = readme.slice(start, end < 0 ? undefined : end).split("\n");
  const header = lines.findIndex((l) =>
    /^\|\s*field\s*\|\s*chat\s*\|\s*completions\s*\|\s*status\s*\|$/.test(l),
  );
  if (header < 0) throw new Error("the section has no `| field | chat | completions | status |` table");
  const rows: Row[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    const cells = line
      .split("|")
      .slice(1, -1)
      .map((c) => c.trim());
    const [field, chat, completions, status] = cells;
    const name = /^`([^`]+)`$/.exec(field ?? "")?.[1];
    if (cells.length !== 4 || name === undefined) throw new Error(`malformed row: ${line}`);
    for (const cell of [chat, completions]) {
      if (cell !== "✓" && cell !== "—")
        throw new Error(`row ${name}: endpoint cells are ✓ or —; got ${cell}`);
    }
    rows.push({
      field: name,
      endpoints: ENDPOINTS.filter((_, i) => [chat, completions][i] === "✓"),
      status: status ?? "",
    });
  }
  return rows;
}

/** The `param` a client would get for this body, or null when it parses. */
function paramFor(endpoint: Endpoint, body: unknown): string | null {
  const result = SCHEMAS[endpoint].safeParse(body);
  return result.success ? null : formatPath(result.error.issues[0]?.path ?? []);
}

const rows = readTable();

describe("README's request field table", () => {
  it("has one row per field, each supported or refused", () => {
    expect(rows.length).toBeGreaterThan(0);
    expect(new Set(rows.map((r) => r.field)).size).toBe(rows.length);
    for (const row of rows) expect(["supported", "refused"], row.field).toContain(row.status);
  });

  it("lists every field in REFUSED_FIELDS as refused on each endpoint that refuses it", () => {
    for (const refused of REFUSED_FIELDS) {
      const row = rows.find((r) => r.field === refused.field);
      expect(row, `README.md has no row for ${refused.field}`).toBeDefined();
      expect(row?.status, refused.field).toBe("refused");
      for (const endpoint of refused.endpoints) expect(row?.endpoints, refused.field).toContain(endpoint);
    }
  });

  it("lists every field the tests hold a case for", () => {
    expect(rows.map((r) => r.field).sort()).toEqual(FIELD_CASES.map((c) => c.field).sort());
  });

  it.each(rows)("$field: $status on the endpoints marked ✓", (row) => {
    const c = FIELD_CASES.find((x) => x.field === row.field);
    if (c === undefined) throw new Error(`no case for ${row.field} in test/helpers/openai-field-cases.ts`);
    expect(row.status).toBe(c.status);
    expect(row.endpoints).toEqual(ENDPOINTS.filter((e) => c[e] !== undefined));
    for (const endpoint of row.endpoints) {
      const values = c[endpoint];
      if (values === undefined) throw new Error(`${row.field}: no values for ${endpoint}`);
      if (row.status === "refused")
        expect(values.refused.length, `${row.field} on ${endpoint}`).toBeGreaterThan(0);
      else expect(values.accepted.length, `${row.field} on ${endpoint}`).toBeGreaterThan(0);
      for (const value of values.refused) {
        expect(
          paramFor(endpoint, requestFor(endpoint, c, value)),
          `${endpoint} ${JSON.stringify(value)}`,
        ).toBe(paramOf(c));
      }
      for (const value of values.accepted) {
        expect(
          paramFor(endpoint, requestFor(endpoint, c, value)),
          `${endpoint} ${JSON.stringify(value)}`,
        ).toBe(null);
      }
    }
  });
});
