/** @jsxImportSource hono/jsx */
// The page frame: skip link, navigation, who is signed in, and the sign-out form. Every form a page renders
// carries the session's CSRF token through <Csrf />.
import type { Child } from "hono/jsx";
import type { ConsoleSession } from "../session-store.ts";

export const NAV = [
  { href: "/console/adapters", label: "Adapters" },
  { href: "/console/compare", label: "Compare" },
  { href: "/console/experiments", label: "Experiments" },
  { href: "/console/runners", label: "Runners" },
  { href: "/console/usage", label: "Usage" },
] as const;

export function Csrf(props: { session: ConsoleSession }) {
  return <input type="hidden" name="csrf" value={props.session.csrfToken} />;
}

function Nav(props: { current: string }) {
  return (
    <nav aria-label="Console">
      <ul>
        {NAV.map((item) => (
          <li>
            <a href={item.href} aria-current={props.current.startsWith(item.href) ? "page" : undefined}>
              {item.label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

export interface PageProps {
  title: string;
  /** The path of the page, for the navigation's current item. */
  path: string;
  session: ConsoleSession | null;
  notice?: string | undefined;
  children?: Child;
}

export function Page(props: PageProps) {
  const { session } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · lora-edge console`}</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header>
          <span class="brand">lora-edge console</span>
          {session && <Nav current={props.path} />}
          {session && (
            <div class="who">
              <span>
                tenant <strong>{session.tenant}</strong>
              </span>
              <form method="post" action="/console/sign-out" class="inline">
                <Csrf session={session} />
                <button type="submit" class="link">
                  Sign out
                </button>
              </form>
            </div>
          )}
        </header>
        <main id="main">
          <h1>{props.title}</h1>
          {props.notice && (
            <p class="notice" role="status">
              {props.notice}
            </p>
          )}
          {props.children}
        </main>
      </body>
    </html>
  );
}

export function ErrorPage(props: { status: number; message: string; session: ConsoleSession | null }) {
  return (
    <Page title={`Error ${props.status}`} path="" session={props.session}>
      <p class="alert" role="alert">
        {props.message}
      </p>
      <p>
        <a href="/console">Back to the console</a>
      </p>
    </Page>
  );
}
