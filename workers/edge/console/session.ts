// Console sign-in state: the session cookie, the middleware that requires it, and CSRF checks on forms.
// CSRF has three layers: SameSite=Strict cookies, an Origin check on every unsafe method, and a synchronizer
// token (the session's) in every form; the sign-in form, which has no session yet, uses a double-submit cookie.
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { timingSafeEqualString } from "../../../src/crypto.ts";
import { AppError } from "../../../src/errors.ts";
import type { EdgeEnv } from "../env.ts";
import { type ConsoleSession, randomToken, SESSION_TTL_S, SessionStore } from "./session-store.ts";

export interface ConsoleEnv {
  Bindings: EdgeEnv["Bindings"];
  Variables: EdgeEnv["Variables"] & { session: ConsoleSession };
}

export const SESSION_COOKIE = "lora_console";
export const SIGN_IN_COOKIE = "lora_console_signin";
export const CSRF_FIELD = "csrf";
const COOKIE_PATH = "/console";

/** Browsers accept a Secure cookie only over https, except on http://localhost, a secure context for them. */
function isLocalHttp(url: URL): boolean {
  return url.protocol === "http:" && ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
}

function cookieOptions(c: Context, maxAge: number) {
  return {
    path: COOKIE_PATH,
    httpOnly: true,
    secure: !isLocalHttp(new URL(c.req.url)),
    sameSite: "Strict" as const,
    maxAge,
  };
}

export function setSessionCookie(c: Context, secret: string): void {
  setCookie(c, SESSION_COOKIE, secret, cookieOptions(c, SESSION_TTL_S));
}

export function clearSessionCookie(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, cookieOptions(c, 0));
}

/** A fresh double-submit token for the sign-in form, set as a short-lived cookie. */
export function issueSignInToken(c: Context): string {
  const token = randomToken();
  setCookie(c, SIGN_IN_COOKIE, token, cookieOptions(c, 30 * 60));
  return token;
}

function csrfRefused(rule: string): AppError {
  return new AppError("forbidden", `${CSRF_FIELD}: ${rule}; reload the page and try again`, {
    param: CSRF_FIELD,
  });
}

/** Unsafe methods must come from a page of this origin (browsers send Origin on every form POST). */
export const sameOrigin = createMiddleware<ConsoleEnv>(async (c, next) => {
  if (c.req.method !== "GET" && c.req.method !== "HEAD") {
    const origin = c.req.header("origin");
    const own = new URL(c.req.url).origin;
    if (origin !== undefined && origin !== own) {
      throw csrfRefused(`a form of this console must be posted from ${own}; got Origin ${origin}`);
    }
  }
  await next();
});

export function checkSignInToken(c: Context, given: string): void {
  const expected = getCookie(c, SIGN_IN_COOKIE);
  if (expected === undefined || !timingSafeEqualString(given, expected)) {
    throw csrfRefused("the sign-in form's token does not match its cookie");
  }
}

export function checkCsrf(session: ConsoleSession, given: string): void {
  if (!timingSafeEqualString(given, session.csrfToken)) {
    throw csrfRefused("the form's token does not belong to this session");
  }
}

export async function currentSession(c: Context<ConsoleEnv>): Promise<ConsoleSession | null> {
  const secret = getCookie(c, SESSION_COOKIE);
  if (secret === undefined || !/^[0-9a-f]{64}$/.test(secret)) return null;
  return await new SessionStore(c.env.DB).find(secret);
}

/**
 * Pages need a live session: a browser without one is sent to sign in (GET), an unsafe request is refused.
 * Every form posted under a session must carry its CSRF token.
 */
export const requireSession = createMiddleware<ConsoleEnv>(async (c, next) => {
  const session = await currentSession(c);
  if (session === null) {
    if (c.req.method === "GET") return c.redirect(`${COOKIE_PATH}/sign-in`, 303);
    throw new AppError("unauthorized", "console: sign in first (no live session cookie)", {
      param: SESSION_COOKIE,
    });
  }
  if (c.req.method !== "GET" && c.req.method !== "HEAD") {
    const form = await c.req.parseBody();
    const given = form[CSRF_FIELD];
    checkCsrf(session, typeof given === "string" ? given : "");
  }
  c.set("session", session);
  await next();
});

export function sessionSecret(c: Context): string | undefined {
  return getCookie(c, SESSION_COOKIE);
}
