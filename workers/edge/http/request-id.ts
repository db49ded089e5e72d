// Every response carries x-request-id; a caller's own id is kept when it is sane, so logs join up.
import { createMiddleware } from "hono/factory";
import type { EdgeEnv } from "../env.ts";

const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const requestId = createMiddleware<EdgeEnv>(async (c, next) => {
  const given = c.req.header("x-request-id");
  const id = given && SANE_ID.test(given) ? given : crypto.randomUUID();
  c.set("requestId", id);
  await next();
  c.header("x-request-id", id);
});
