// Drives the console like a browser does: cookies carried by hand, forms posted url-encoded with an Origin,
// CSRF tokens read back from the rendered HTML.
import { call } from "./edge.ts";

export const ORIGIN = "http://edge.test";

export interface Browser {
  cookies: Map<string, string>;
}

export function newBrowser(): Browser {
  return { cookies: new Map() };
}

/** Keeps what Set-Cookie says (a Max-Age=0 or empty value deletes). */
export function remember(b: Browser, res: Response): void {
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(";");
    const eq = (pair ?? "").indexOf("=");
    const name = (pair ?? "").slice(0, eq).trim();
    const value = (pair ?? "").slice(eq + 1).trim();
    if (value === "" || /max-age=0/i.test(line)) b.cookies.delete(name);
    else b.cookies.set(name, value);
  }
}

function cookieHeader(b: Browser): string {
  return [...b.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
}

export async function visit(b: Browser, path: string): Promise<Response> {
  const res = await call("GET", path, { headers: { cookie: cookieHeader(b) } });
  remember(b, res);
  return res;
}

export async function submit(
  b: Browser,
  path: string,
  fields: Record<string, string | string[]>,
  options: { origin?: string | null } = {},
): Promise<Response> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) {
    for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
  }
  const headers: Record<string, string> = {
    cookie: cookieHeader(b),
    "content-type": "application/x-www-form-urlencoded",
  };
  if (options.origin !== null) headers.origin = options.origin ?? ORIGIN;
  const res = await call("POST", path, { headers, body: body.toString() });
  remember(b, res);
  return res;
}

/** The CSRF token of the first form on a page. */
export function csrfOf(html: string): string {
  const match = /name="csrf" value="([0-9a-f]{64})"/.exec(html);
  if (!match?.[1]) throw new Error(`no csrf field in page:\n${html.slice(0, 500)}`);
  return match[1];
}

export async function page(b: Browser, path: string): Promise<{ html: string; csrf: string }> {
  const res = await visit(b, path);
  const html = await res.text();
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}: ${html.slice(0, 500)}`);
  return { html, csrf: csrfOf(html) };
}

/** Signs in with a key through the sign-in form; returns the final response (303 on success). */
export async function signInWith(b: Browser, key: string): Promise<Response> {
  const form = await page(b, "/console/sign-in");
  return await submit(b, "/console/sign-in", { csrf: form.csrf, key });
}

export async function signedIn(key: string): Promise<Browser> {
  const b = newBrowser();
  const res = await signInWith(b, key);
  if (res.status !== 303) throw new Error(`sign-in: HTTP ${res.status}: ${await res.text()}`);
  return b;
}

/** Visible text of HTML, tags dropped and whitespace collapsed, for readable assertions. */
export function textOf(html: string): string {
  return html
    .replace(/<[^>]+>/g, " ")
    .replace(/&amp;/g, "&")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/\s+/g, " ")
    .trim();
}
