// A seeded synthetic support-ticket dataset for the demo: five categories, each ticket built from phrase
// templates with names, products and numbers filled in. Two tasks share the tickets: classification (the
// answer is the category word) and replies in one company's tone ("Nimbus Support").
import { createRng, type Rng } from "../../src/random.ts";

export const CATEGORIES = ["billing", "technical", "account", "shipping", "feature"] as const;
export type Category = (typeof CATEGORIES)[number];

// `about` is how the reply names the ticket's issue: the reply template's detail field. It is told by the
// ticket's words (as the category is), not copied from them: a tiny base learns that, and not yet to copy
// numbers character by character (README, Training).
interface Issue {
  text: string;
  about: string;
}

const ISSUES: Record<Category, Issue[]> = {
  billing: [
    { text: "I was charged twice for my {plan} plan this month", about: "a double charge" },
    { text: "my invoice {num} shows the wrong amount", about: "a wrong invoice" },
    { text: "please refund the payment I made on {day}", about: "a refund" },
    { text: "the card payment for order {num} failed but the money is gone", about: "a failed payment" },
    { text: "why did the price of my {plan} plan go up", about: "a price change" },
  ],
  technical: [
    { text: "the app crashes every time I open the {page} page", about: "a crash" },
    { text: "I get error {num} when I try to sync my files", about: "a sync error" },
    { text: "the {page} page is very slow and does not load", about: "a slow page" },
    { text: "the {product} stopped working after the last update", about: "a broken update" },
    { text: "the export button on the {page} page does nothing", about: "a dead button" },
  ],
  account: [
    { text: "I cannot log in to my account since {day}", about: "a failed login" },
    { text: "please help me reset the password of my {plan} account", about: "a password reset" },
    { text: "I want to change the email on my {plan} account", about: "an email change" },
    { text: "my account was locked on {day} after too many attempts", about: "a locked account" },
    { text: "how do I delete my {plan} account and my data", about: "an account deletion" },
  ],
  shipping: [
    { text: "my package {num} has not arrived yet", about: "a late package" },
    { text: "the tracking page for order {num} has not moved since {day}", about: "stuck tracking" },
    { text: "the box arrived damaged and the {product} is broken", about: "a damaged box" },
    { text: "can you ship my {product} to a different address", about: "a new address" },
    { text: "the delivery of {day} was left at the wrong door", about: "a wrong door" },
  ],
  feature: [
    { text: "it would be great if the {page} page had a dark mode", about: "a dark mode" },
    { text: "please add an option to export the {page} page as a spreadsheet", about: "spreadsheet export" },
    { text: "I would like to share folders on my {plan} plan with my whole team", about: "team sharing" },
    { text: "could you add a calendar view to the {product}", about: "a calendar view" },
    { text: "we need a way to schedule messages in the {product}", about: "scheduled messages" },
  ],
};

const OPENERS = ["Hello,", "Hi there,", "Good morning,", "Hey team,", "Dear support,", ""];
const CLOSERS = ["Thanks!", "Thank you.", "Please help.", "Regards,", "Cheers.", ""];
const NAMES = [
  "Ana",
  "Ben",
  "Chen",
  "Dana",
  "Eli",
  "Fatima",
  "Goran",
  "Hana",
  "Ivan",
  "Julia",
  "Kofi",
  "Lena",
];
const PLANS = ["basic", "pro", "team"];
const PAGES = ["settings", "home", "reports", "profile"];
const PRODUCTS = ["mobile app", "desktop app", "smart lamp", "photo frame"];
const DAYS = ["Monday", "Tuesday", "Friday", "last week", "yesterday"];

const REPLIES: Record<Category, string> = {
  billing: "Our billing team will correct it within two days.",
  technical: "Our engineers are on it, and a fix is on the way.",
  account: "I have sent a secure link to the email on your account.",
  shipping: "I have asked our courier for an update.",
  feature: "I have shared your idea with our product team.",
};

// Short on purpose: every prompt token is paid for on each training step of the first start.
export const SYSTEM_CLASSIFY = "Category?";
export const SYSTEM_REPLY = "Reply as Nimbus Support.";

/** The seed and size of the demo's training tickets (`npm start` trains on these). */
export const DEMO_SEED = 7;
export const DEMO_ROWS = 400;
/** The held-out tickets (`npm run demo:traffic`, the demo's figures) come from their own seed. */
export const HELD_OUT_SEED = 1007;
/** The category the launch version of support-classify was trained without (see train-demo.ts). */
export const LATE_CATEGORY: Category = "feature";

export interface Ticket {
  category: Category;
  name: string;
  text: string;
  /** The ticket's issue as the reply names it ("a late package"). */
  about: string;
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.nextU32() % items.length] as T;

/** Fills one issue's slots (its `about` has none). */
function fill(rng: Rng, issue: Issue): { text: string; about: string } {
  const values: Record<string, string> = {
    "{plan}": pick(rng, PLANS),
    "{page}": pick(rng, PAGES),
    "{product}": pick(rng, PRODUCTS),
    "{day}": pick(rng, DAYS),
    "{num}": String(1000 + (rng.nextU32() % 9000)),
  };
  const put = (s: string) => s.replace(/\{[a-z]+\}/g, (slot) => values[slot] ?? slot);
  return { text: put(issue.text), about: put(issue.about) };
}

export function makeTickets(count: number, seed: number): Ticket[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, (_, i) => {
    const category = CATEGORIES[i % CATEGORIES.length] as Category;
    const name = pick(rng, NAMES);
    const { text: body, about } = fill(rng, pick(rng, ISSUES[category]));
    const text = [pick(rng, OPENERS), `${body[0]?.toUpperCase()}${body.slice(1)}.`, pick(rng, CLOSERS), name]
      .filter(Boolean)
      .join(" ");
    return { category, name, text, about };
  });
}

/**
 * `count` tickets none of which is among the demo's training tickets or the base's warm-up text: labelled
 * data the adapters never saw, for `npm run demo:traffic` and the demo's figures.
 */
export function heldOutTickets(count: number, seen: readonly Ticket[]): Ticket[] {
  const texts = new Set(seen.map((t) => t.text));
  const out: Ticket[] = [];
  for (let batch = 0; out.length < count; batch++) {
    for (const t of makeTickets(count * 2, HELD_OUT_SEED + batch)) {
      if (out.length < count && !texts.has(t.text)) {
        texts.add(t.text);
        out.push(t);
      }
    }
  }
  return out;
}

/** Unlabelled ticket text the demo base is warmed up on (warm-up-base.ts). */
export function warmUpTickets(seed: number): Ticket[] {
  return makeTickets(120, seed + 101);
}

/** Held-out tickets for the demo as `npm start` trains it: none among its training or warm-up tickets. */
export function demoHeldOutTickets(count: number): Ticket[] {
  return heldOutTickets(count, [...makeTickets(DEMO_ROWS, DEMO_SEED), ...warmUpTickets(DEMO_SEED)]);
}

export function classifyRow(t: Ticket): Record<string, unknown> {
  return {
    messages: [
      { role: "system", content: SYSTEM_CLASSIFY },
      { role: "user", content: t.text },
      { role: "assistant", content: t.category },
    ],
  };
}

/** Nimbus's reply template with the ticket's fields filled in. */
export function expectedReply(t: Ticket): string {
  return `Hi ${t.name}, thanks for writing to Nimbus. Type: ${t.category}. About: ${t.about}. ${REPLIES[t.category]} Warm wishes, Nimbus Support.`;
}

const REPLY_SHAPE =
  /^Hi (?<name>[^,]+), thanks for writing to Nimbus\. Type: (?<category>[a-z]+)\. About: (?<about>.+?)\. (?<body>.+?) Warm wishes, Nimbus Support\.$/;

export interface ReplyCheck {
  /** The reply has the template's shape (every fixed part in place). */
  template: boolean;
  name: boolean;
  category: boolean;
  about: boolean;
  body: boolean;
  /** Equal to the expected reply. */
  exact: boolean;
}

/** How a reply compares with the template filled in for `t`: its shape, then each field. */
export function checkReply(t: Ticket, reply: string): ReplyCheck {
  const text = reply.trim();
  const m = REPLY_SHAPE.exec(text)?.groups;
  return {
    template: m !== undefined,
    name: m?.name === t.name,
    category: m?.category === t.category,
    about: m?.about === t.about,
    body: m?.body === REPLIES[t.category],
    exact: text === expectedReply(t),
  };
}

export function replyRow(t: Ticket): Record<string, unknown> {
  return {
    messages: [
      { role: "system", content: SYSTEM_REPLY },
      { role: "user", content: t.text },
      { role: "assistant", content: expectedReply(t) },
    ],
  };
}
