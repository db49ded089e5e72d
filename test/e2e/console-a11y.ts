// A hand-written accessibility check for the console's pages, run in the real browser: every form control
// has a label, every text meets WCAG AA contrast against what is really behind it, every chart has a name,
// and Tab reaches every control with a visible focus ring. Hand-written rather than axe-core: the console's
// pages are small and of one make, these are the rules the console must meet, and a 500 KB rule engine would
// be a dependency that tests mostly rules these pages cannot break.
import type { Page } from "playwright-core";

// The browser's globals, typed as far as these checks use them: the test ring compiles without the DOM lib
// (it would retype fetch and Headers for every Node test), and these functions run only in the page.
interface Box {
  width: number;
  height: number;
}
interface Style {
  visibility: string;
  display: string;
  backgroundColor: string;
  color: string;
  fill: string;
  fontSize: string;
  fontWeight: string;
  outlineStyle: string;
  outlineWidth: string;
  boxShadow: string;
}
interface El {
  tagName: string;
  id: string;
  textContent: string | null;
  parentElement: El | null;
  classList: { contains(name: string): boolean };
  dataset: Record<string, string | undefined>;
  labels?: ArrayLike<El> & Iterable<El>;
  getAttribute(name: string): string | null;
  getBoundingClientRect(): Box;
  closest(selector: string): El | null;
  blur(): void;
}
declare const document: {
  documentElement: El & { lang: string };
  body: El;
  activeElement: El | null;
  querySelectorAll(selector: string): ArrayLike<El> & Iterable<El>;
  getElementById(id: string): El | null;
  createTreeWalker(
    root: El,
    what: number,
  ): { nextNode(): { textContent: string | null; parentElement: El | null } | null };
};
declare const window: { scrollTo(x: number, y: number): void };
declare function getComputedStyle(el: El): Style;
declare const NodeFilter: { SHOW_TEXT: number };

export interface A11yProblem {
  rule: "label" | "contrast" | "name" | "focus" | "document";
  where: string;
  detail: string;
}

/** Runs in the page: labels, names and contrast. Self-contained, since it is serialised into the browser. */
function staticChecks(): A11yProblem[] {
  const problems: A11yProblem[] = [];
  const describe = (el: El) =>
    `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}${el.getAttribute("name") ? `[name=${el.getAttribute("name")}]` : ""}`;
  const visible = (el: El) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
  };
  const textOfIds = (ids: string) =>
    ids
      .split(/\s+/)
      .map((id) => document.getElementById(id)?.textContent?.trim() ?? "")
      .join(" ")
      .trim();
  const nameOf = (el: El): string => {
    const labelledBy = el.getAttribute("aria-labelledby");
    if (labelledBy) return textOfIds(labelledBy);
    const aria = el.getAttribute("aria-label");
    if (aria) return aria.trim();
    const labels = el.labels;
    if (labels && labels.length > 0) return [...labels].map((l) => l.textContent?.trim() ?? "").join(" ");
    return "";
  };

  if (!document.documentElement.lang) problems.push({ rule: "document", where: "html", detail: "no lang" });
  if (document.querySelectorAll("h1").length !== 1) {
    problems.push({ rule: "document", where: "h1", detail: "a page needs exactly one h1" });
  }
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (nameOf(el) === "")
      problems.push({ rule: "label", where: describe(el), detail: "control without a label" });
  }
  for (const el of document.querySelectorAll("a[href], button, summary")) {
    if (visible(el) && nameOf(el) === "" && (el.textContent ?? "").trim() === "") {
      problems.push({ rule: "name", where: describe(el), detail: "link or button without a name" });
    }
  }
  for (const el of document.querySelectorAll("svg[role=img]")) {
    if (nameOf(el) === "")
      problems.push({ rule: "name", where: describe(el), detail: "chart without a name" });
  }

  const rgba = (css: string): [number, number, number, number] => {
    const m = css.match(/[\d.]+/g)?.map(Number) ?? [0, 0, 0];
    return [m[0] ?? 0, m[1] ?? 0, m[2] ?? 0, m[3] ?? 1];
  };
  const luminance = ([r, g, b]: number[]) => {
    const lin = (c: number) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r ?? 0) + 0.7152 * lin(g ?? 0) + 0.0722 * lin(b ?? 0);
  };
  const background = (el: El | null): number[] => {
    for (let e = el; e !== null; e = e.parentElement) {
      const [r, g, b, a] = rgba(getComputedStyle(e).backgroundColor);
      if (a > 0.5) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const ratio = (a: number[], b: number[]) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
    return (hi + 0.05) / (lo + 0.05);
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
    const el = node.parentElement;
    if (el === null || (node.textContent ?? "").trim() === "" || !visible(el)) continue;
    const s = getComputedStyle(el);
    const inSvg = el.closest("svg") !== null;
    const fg = rgba(inSvg ? s.fill : s.color);
    const size = Number.parseFloat(s.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
    const need = large ? 3 : 4.5;
    const got = ratio(fg, background(el));
    if (got < need) {
      problems.push({
        rule: "contrast",
        where: describe(el),
        detail: `"${(node.textContent ?? "").trim().slice(0, 30)}" has contrast ${got.toFixed(2)}:1; needs ${need}:1`,
      });
    }
  }
  return problems;
}

interface Focused {
  key: string;
  where: string;
  ring: boolean;
  visible: boolean;
}

/** Every control Tab should reach: visible links, buttons, fields and summaries. */
async function focusables(page: Page): Promise<string[]> {
  return await page.evaluate(() =>
    [...document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea, summary")]
      .filter((el) => el.getBoundingClientRect().width > 0 || el.classList.contains("skip"))
      .map((el, i) => {
        el.dataset.a11y = String(i);
        return String(i);
      }),
  );
}

async function tabOnce(page: Page): Promise<Focused | null> {
  await page.keyboard.press("Tab");
  return await page.evaluate(() => {
    const el = document.activeElement;
    if (el === null || el === document.body) return null;
    const s = getComputedStyle(el);
    // "auto" is the browser's own focus ring; a custom one must be at least 2px to be seen.
    const ring =
      s.outlineStyle === "auto" ||
      (s.outlineStyle !== "none" && Number.parseFloat(s.outlineWidth) >= 2) ||
      s.boxShadow !== "none";
    const r = el.getBoundingClientRect();
    return {
      key: el.dataset.a11y ?? "",
      where: `${el.tagName.toLowerCase()} "${(el.textContent ?? el.getAttribute("name") ?? "").trim().slice(0, 30)}"`,
      ring,
      visible: r.width > 0 && r.height > 0,
    };
  });
}

/** Tabs through the page from the top: each control once, in order, each with a visible focus ring. */
async function focusChecks(page: Page): Promise<A11yProblem[]> {
  const expected = await focusables(page);
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.scrollTo(0, 0);
  });
  const problems: A11yProblem[] = [];
  const reached = new Set<string>();
  for (let i = 0; i < expected.length + 2; i++) {
    const f = await tabOnce(page);
    if (f === null) break;
    if (reached.has(f.key)) break;
    reached.add(f.key);
    if (!f.ring || !f.visible) {
      problems.push({ rule: "focus", where: f.where, detail: "focused without a visible focus ring" });
    }
  }
  const missed = expected.filter((k) => !reached.has(k));
  if (missed.length > 0) {
    problems.push({ rule: "focus", where: `${missed.length} control(s)`, detail: "not reachable with Tab" });
  }
  return problems;
}

export async function accessibilityProblems(page: Page): Promise<A11yProblem[]> {
  const found = await page.evaluate(staticChecks);
  return [...found, ...(await focusChecks(page))];
}
