// The Worker entrypoint: the app with its real dependencies (wiring lives in app.ts).
import { createApp } from "./app.ts";

export default createApp();
// The tenant's meter (a Durable Object class) must be exported by the Worker's main module.
export { TenantMeter } from "./usage/tenant-meter.ts";
