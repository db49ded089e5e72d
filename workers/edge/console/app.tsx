/** @jsxImportSource hono/jsx */
// The operator console: server-rendered pages for one tenant's admins, mounted at /console. Sign-in trades an
// admin API key for a session cookie; every page reads and acts through the same stores and services as the
// admin API, scoped to the session's tenant.
import { Hono } from "hono";
import { z } from "zod";
import { AppError } from "../../../src/errors.ts";
import { validate } from "../../../src/http/validate.ts";
import { hasScope } from "../http/auth.ts";
import { KeyStore } from "../tenants/key-store.ts";
import { adapterPages } from "./routes/adapters.tsx";
import { comparePages } from "./routes/compare.tsx";
import { experimentPages } from "./routes/experiments.tsx";
import { type RunnerFetch, runnerPages } from "./routes/runners.tsx";
import { usagePages } from "./routes/usage.tsx";
import {
  type ConsoleEnv,
  checkSignInToken,
  clearSessionCookie,
  currentSession,
  issueSignInToken,
  requireSession,
  sameOrigin,
  sessionSecret,
  setSessionCookie,
} from "./session.ts";
import { SessionStore } from "./session-store.ts";
import { CONSOLE_CSS } from "./styles.ts";
import { ErrorPage } from "./views/layout.tsx";
import { SignInPage } from "./views/sign-in.tsx";

export interface ConsoleOptions {
  /** How the runners page reaches runners; tests pass a fake. */
  fetch?: RunnerFetch;
}

/** No inline script or style runs, no other origin is loaded, and no page may frame the console. */
const CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const SignInForm = z.strictObject({ csrf: z.string(), key: z.string().trim().min(1, "must not be empty") });

function signInRoutes() {
  return new Hono<ConsoleEnv>()
    .get("/sign-in", async (c) => {
      if ((await currentSession(c)) !== null) return c.redirect("/console/adapters", 303);
      return c.html(<SignInPage token={issueSignInToken(c)} />);
    })
    .post("/sign-in", validate("form", SignInForm), async (c) => {
      const form = c.req.valid("form");
      checkSignInToken(c, form.csrf);
      const key = await new KeyStore(c.env.DB).authenticate(form.key);
      if (key === null || !hasScope({ kind: "key", ...key }, "admin")) {
        // One message for unknown, revoked and under-scoped keys: the page must not help guess keys.
        const message =
          "key: must be a live API key with scope admin; this one is unknown, revoked or lacks admin";
        return c.html(<SignInPage token={issueSignInToken(c)} message={message} />, 401);
      }
      const opened = await new SessionStore(c.env.DB).open(key.keyId, key.tenant);
      setSessionCookie(c, opened.secret);
      return c.redirect("/console/adapters", 303);
    })
    .post("/sign-out", requireSession, async (c) => {
      const secret = sessionSecret(c);
      if (secret !== undefined) await new SessionStore(c.env.DB).close(secret);
      clearSessionCookie(c);
      return c.redirect("/console/sign-in", 303);
    });
}

export function createConsole(options: ConsoleOptions = {}): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>();
  app.use("*", async (c, next) => {
    await next();
    c.header("content-security-policy", CSP);
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "same-origin");
    // Pages hold tenant data: no shared cache may keep them.
    if (!c.req.path.startsWith("/console/assets/")) c.header("cache-control", "no-store");
  });
  app.use("*", sameOrigin);
  app.get("/assets/console.css", (c) =>
    c.body(CONSOLE_CSS, 200, { "content-type": "text/css; charset=utf-8", "cache-control": "max-age=300" }),
  );
  app.get("/", async (c) =>
    c.redirect((await currentSession(c)) === null ? "/console/sign-in" : "/console/adapters", 303),
  );
  app.route("/", signInRoutes());
  // Everything registered below needs a session: a page added later is signed-in only by default.
  app.use("*", requireSession);
  app.route("/", adapterPages);
  app.route("/", comparePages);
  app.route("/", experimentPages);
  app.route("/", runnerPages(options.fetch ?? ((input, init) => fetch(input, init))));
  app.route("/", usagePages);
  app.onError(async (error, c) => {
    const appError =
      error instanceof AppError ? error : new AppError("internal_error", "internal error in the console");
    if (appError.status >= 500) console.error(`[${c.get("requestId")}] console`, error);
    if (appError.code === "unauthorized") clearSessionCookie(c);
    const session = appError.code === "unauthorized" ? null : await currentSession(c).catch(() => null);
    c.header("x-request-id", c.get("requestId"));
    return c.html(
      <ErrorPage status={appError.status} message={appError.message} session={session} />,
      appError.status as 400,
    );
  });
  return app;
}
