import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../workers/edge/app.ts";
import { ADMIN, call, newKey, newTenant } from "./support/edge.ts";
import { newBrowser, page, signedIn, signInWith, submit, textOf, visit } from "./support/console.ts";

function sessionCookie(res: Response): string {
  const line = res.headers.getSetCookie().find((l) => l.startsWith("lora_console="));
  if (line === undefined)
    throw new Error(`no session cookie in ${JSON.stringify(res.headers.getSetCookie())}`);
  return line;
}

describe("console sign-in", () => {
  it("sends a browser without a session to the sign-in form", async () => {
    for (const path of ["/console", "/console/adapters", "/console/experiments/x", "/console/runners"]) {
      const res = await call("GET", path);
      expect([path, res.status, res.headers.get("location")]).toEqual([path, 303, "/console/sign-in"]);
    }
  });

  it("trades an admin key for an HttpOnly, Secure, SameSite=Strict session cookie that opens the pages", async () => {
    const { tenant, key } = await newTenant(["admin"]);
    const b = newBrowser();
    const res = await signInWith(b, key);
    expect([res.status, res.headers.get("location")]).toEqual([303, "/console/adapters"]);
    const cookie = sessionCookie(res);
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; Secure/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    expect(cookie).toMatch(/; Path=\/console/);
    // The key itself never reaches the browser: the cookie holds a random session secret.
    expect(cookie).not.toContain(key);
    const adapters = await page(b, "/console/adapters");
    expect(textOf(adapters.html)).toContain(`tenant ${tenant}`);
    const row = await env.DB.prepare("SELECT tenant FROM console_sessions WHERE tenant = ?")
      .bind(tenant)
      .first<{ tenant: string }>();
    expect(row?.tenant).toBe(tenant);
  });

  it("leaves Secure off only on http://localhost, where browsers would refuse it", async () => {
    const { key } = await newTenant(["admin"]);
    const app = createApp();
    const send = async (request: Request) => {
      const ctx = createExecutionContext();
      const res = await app.fetch(request, env, ctx);
      await waitOnExecutionContext(ctx);
      return res;
    };
    const form = await send(new Request("http://localhost:8787/console/sign-in"));
    const signInCookie = (form.headers.getSetCookie()[0] ?? "").split(";")[0] as string;
    expect(form.headers.getSetCookie()[0]).not.toMatch(/Secure/);
    const csrf = /name="csrf" value="([0-9a-f]{64})"/.exec(await form.text())?.[1] as string;
    const res = await send(
      new Request("http://localhost:8787/console/sign-in", {
        method: "POST",
        headers: { cookie: signInCookie, origin: "http://localhost:8787" },
        body: new URLSearchParams({ csrf, key }),
      }),
    );
    expect(res.status).toBe(303);
    const cookie = sessionCookie(res);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).not.toMatch(/Secure/);
  });

  it("refuses keys without admin scope, the operator token, revoked and unknown keys, with one message", async () => {
    const { tenant } = await newTenant(["admin"]);
    const publishOnly = await newKey(tenant, ["publish", "infer"]);
    const revoked = await newKey(tenant, ["admin"]);
    const listed = await call("GET", `/admin/keys?tenant=${tenant}`, { token: ADMIN });
    const ids = ((await listed.json()) as { data: { id: string; prefix: string }[] }).data;
    const revokedId = ids.find((k) => revoked.startsWith(k.prefix))?.id as string;
    expect((await call("DELETE", `/admin/keys/${revokedId}?tenant=${tenant}`, { token: ADMIN })).status).toBe(
      200,
    );
    for (const key of [publishOnly, ADMIN, revoked, "lek_nope"]) {
      const b = newBrowser();
      const res = await signInWith(b, key);
      expect(res.status).toBe(401);
      expect(res.headers.getSetCookie().some((l) => l.startsWith("lora_console="))).toBe(false);
      expect(textOf(await res.text())).toContain(
        "key: must be a live API key with scope admin; this one is unknown, revoked or lacks admin",
      );
    }
  });

  it("refuses a sign-in whose form token does not match its cookie (login CSRF)", async () => {
    const { key } = await newTenant(["admin"]);
    const b = newBrowser();
    await page(b, "/console/sign-in");
    const res = await submit(b, "/console/sign-in", { csrf: "0".repeat(64), key });
    expect(res.status).toBe(403);
    expect(textOf(await res.text())).toContain("csrf: the sign-in form's token does not match its cookie");
    const bare = await submit(newBrowser(), "/console/sign-in", { csrf: "0".repeat(64), key });
    expect(bare.status).toBe(403);
  });

  it("ends the session on sign-out and when its key is revoked", async () => {
    const { tenant, key } = await newTenant(["admin"]);
    const b = await signedIn(key);
    const stolen = new Map(b.cookies);
    const { csrf } = await page(b, "/console/adapters");
    const out = await submit(b, "/console/sign-out", { csrf });
    expect([out.status, out.headers.get("location")]).toEqual([303, "/console/sign-in"]);
    // A copy of the cookie taken before sign-out is dead too: the session row is gone.
    const replay = await visit({ cookies: stolen }, "/console/adapters");
    expect(replay.status).toBe(303);

    const again = await signedIn(key);
    expect((await visit(again, "/console/adapters")).status).toBe(200);
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE tenant = ?")
      .bind(new Date().toISOString(), tenant)
      .run();
    const after = await visit(again, "/console/adapters");
    expect([after.status, after.headers.get("location")]).toEqual([303, "/console/sign-in"]);
  });

  it("sets a strict content security policy and no-store on pages", async () => {
    const res = await call("GET", "/console/sign-in");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const css = await call("GET", "/console/assets/console.css");
    expect([css.status, css.headers.get("content-type")]).toEqual([200, "text/css; charset=utf-8"]);
  });
});
