// The console's one stylesheet, served from the Worker (no build server). Colours meet WCAG AA: body text
// and links >= 4.5:1 on their background, focus rings and chart strokes >= 3:1 against white.
export const PALETTE = {
  text: "#1a1a1a",
  muted: "#4d4d4d",
  link: "#0b57d0",
  border: "#8c8c8c",
  danger: "#b3261e",
  ok: "#146c2e",
  focus: "#b45309",
  /** One colour per variant or series, each >= 3:1 against white. */
  series: ["#0b57d0", "#b3261e", "#146c2e", "#7b1fa2", "#8a5a00", "#00695c", "#c2185b", "#37474f"],
} as const;

export const CONSOLE_CSS = `
*, *::before, *::after { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: ${PALETTE.text};
  background: #ffffff; }
a { color: ${PALETTE.link}; }
:focus-visible { outline: 3px solid ${PALETTE.focus}; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #ffffff; padding: 8px; }
.skip:focus { left: 8px; }
header { display: flex; align-items: center; gap: 24px; padding: 10px 24px; border-bottom: 1px solid ${PALETTE.border}; }
header .brand { font-weight: 700; }
header nav ul { display: flex; gap: 16px; list-style: none; margin: 0; padding: 0; }
header nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
header .who { margin-left: auto; display: flex; gap: 12px; align-items: center; color: ${PALETTE.muted}; }
main { padding: 16px 24px 48px; max-width: 1200px; }
h1 { font-size: 1.5rem; margin: 8px 0 16px; }
h2 { font-size: 1.2rem; margin: 28px 0 10px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid ${PALETTE.border}; vertical-align: top; }
th { font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; }
.muted { color: ${PALETTE.muted}; }
.notice { padding: 10px 14px; border-left: 4px solid ${PALETTE.ok}; background: #f1f8f3; margin: 8px 0 16px; }
.alert { padding: 10px 14px; border-left: 4px solid ${PALETTE.danger}; background: #fdf1f0; margin: 8px 0 16px; }
form.inline { display: inline-flex; gap: 8px; align-items: end; flex-wrap: wrap; margin: 4px 8px 4px 0;
  vertical-align: bottom; }
form.stack { display: grid; gap: 10px; max-width: 640px; }
label { display: grid; gap: 2px; font-weight: 600; }
fieldset { border: 1px solid ${PALETTE.border}; padding: 8px 12px; }
fieldset label { display: flex; gap: 6px; font-weight: 400; align-items: center; }
input, select, textarea { font: inherit; color: ${PALETTE.text}; background: #ffffff;
  border: 1px solid ${PALETTE.border}; border-radius: 4px; padding: 5px 8px; }
textarea { min-height: 5em; }
button { font: inherit; font-weight: 600; color: #ffffff; background: ${PALETTE.link}; border: 0;
  border-radius: 4px; padding: 6px 14px; cursor: pointer; }
button.danger { background: ${PALETTE.danger}; }
button.link { background: none; color: ${PALETTE.link}; padding: 0; text-decoration: underline; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 16px; }
.card { border: 1px solid ${PALETTE.border}; border-radius: 6px; padding: 12px; }
.card h3 { margin: 0 0 8px; }
.card dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; margin: 0; }
.card dd { margin: 0; }
.card pre { white-space: pre-wrap; word-break: break-word; margin: 8px 0 0; }
.legend { display: flex; gap: 16px; list-style: none; padding: 0; margin: 4px 0; flex-wrap: wrap; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: middle; }
figure { margin: 0 0 16px; min-width: 0; }
figure svg { width: 100%; max-width: 440px; height: auto; }
figcaption { font-weight: 600; }
svg text { font: 11px system-ui, sans-serif; fill: ${PALETTE.text}; }
`;
