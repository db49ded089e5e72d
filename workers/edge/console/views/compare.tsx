/** @jsxImportSource hono/jsx */
// Compare: one prompt, several models (adapter versions, aliases, base models), answers side by side.
import type { z } from "zod";
import type { CompareResponseSchema } from "../../../../src/contracts/experiments.ts";
import type { ConsoleSession } from "../session-store.ts";
import { ms } from "./format.ts";
import { Csrf, Page } from "./layout.tsx";

export type CompareResponse = z.infer<typeof CompareResponseSchema>;

export interface CompareChoices {
  /** Each group is a fieldset: an adapter's versions and aliases, or the base models. */
  groups: { legend: string; models: string[] }[];
}

export interface CompareForm {
  prompt: string;
  models: string[];
  maxTokens: number;
}

function ModelChoices(props: { choices: CompareChoices; selected: string[] }) {
  return (
    <>
      {props.choices.groups.map((g) => (
        <fieldset>
          <legend>{g.legend}</legend>
          {g.models.map((m) => (
            <label>
              <input type="checkbox" name="models" value={m} checked={props.selected.includes(m)} />
              {m}
            </label>
          ))}
        </fieldset>
      ))}
    </>
  );
}

function usageOf(r: CompareResponse["results"][number]): string {
  if (r.usage === null) return "–";
  return `${r.usage.prompt_tokens ?? "?"} in, ${r.usage.completion_tokens ?? "?"} out`;
}

function Results(props: { response: CompareResponse }) {
  return (
    <section aria-labelledby="answers">
      <h2 id="answers">Answers</h2>
      <div class="grid">
        {props.response.results.map((r) => (
          <article class="card" aria-label={`Answer of ${r.model}`}>
            <h3>{r.model}</h3>
            <dl>
              <dt>Resolved to</dt>
              <dd>{r.adapter ?? "base model"}</dd>
              <dt>Latency</dt>
              <dd>{ms(r.latencyMs)}</dd>
              <dt>Tokens</dt>
              <dd>{usageOf(r)}</dd>
            </dl>
            {r.error === null ? (
              <pre>{r.text ?? ""}</pre>
            ) : (
              <p class="alert">
                HTTP {r.status}: {r.error}
              </p>
            )}
          </article>
        ))}
      </div>
    </section>
  );
}

export function ComparePage(props: {
  session: ConsoleSession;
  choices: CompareChoices;
  form: CompareForm;
  response?: CompareResponse;
}) {
  const { form } = props;
  return (
    <Page title="Compare" path="/console/compare" session={props.session}>
      <p>Send one prompt to up to eight models at once; the runner batches them.</p>
      <form method="post" action="/console/compare" class="stack">
        <Csrf session={props.session} />
        <label>
          Prompt
          <textarea name="prompt" required>
            {form.prompt}
          </textarea>
        </label>
        <ModelChoices choices={props.choices} selected={form.models} />
        <label>
          Max tokens
          <input type="number" name="max_tokens" min="1" max="4096" value={String(form.maxTokens)} />
        </label>
        <div>
          <button type="submit">Compare</button>
        </div>
      </form>
      {props.response && <Results response={props.response} />}
    </Page>
  );
}
