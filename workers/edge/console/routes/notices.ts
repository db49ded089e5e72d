// After an action the console redirects (POST → 303 → GET) with a notice key; only these fixed texts are
// shown, so a crafted link cannot put words on a tenant's page.
import type { Context } from "hono";

const NOTICES = {
  yanked: "Version yanked: it no longer resolves.",
  "alias-moved": "Alias moved.",
  promoted: "Variant promoted: the alias moved and the experiment is concluded.",
  stopped: "Experiment stopped: it now serves control and records nothing more.",
} as const;

export type NoticeKey = keyof typeof NOTICES;

export function redirectWithNotice(c: Context, path: string, notice: NoticeKey): Response {
  return c.redirect(`${path}?notice=${notice}`, 303);
}

export function noticeFrom(c: Context): string | undefined {
  const key = c.req.query("notice");
  return key !== undefined && Object.hasOwn(NOTICES, key) ? NOTICES[key as NoticeKey] : undefined;
}
