// The Worker entrypoint: the app with its real dependencies (wiring lives in app.ts).
import { createApp } from "./app.ts";

export default createApp();
