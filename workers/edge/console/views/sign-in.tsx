/** @jsxImportSource hono/jsx */
import { Page } from "./layout.tsx";

export function SignInPage(props: { token: string; message?: string | undefined }) {
  return (
    <Page title="Sign in" path="/console/sign-in" session={null}>
      <p>Sign in with an API key of your tenant that has scope admin. The key is not kept in the browser.</p>
      {props.message && (
        <p class="alert" role="alert">
          {props.message}
        </p>
      )}
      <form method="post" action="/console/sign-in" class="stack">
        <input type="hidden" name="csrf" value={props.token} />
        <label>
          API key
          <input
            type="password"
            name="key"
            autocomplete="off"
            required
            spellcheck={false}
            aria-describedby="key-help"
          />
        </label>
        <span id="key-help" class="muted">
          Starts with <code>lek_</code>; the operator's bootstrap token has no tenant and cannot sign in here.
        </span>
        <div>
          <button type="submit">Sign in</button>
        </div>
      </form>
    </Page>
  );
}
