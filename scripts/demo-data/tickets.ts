// A seeded synthetic support-ticket dataset for the demo: five categories, each ticket built from phrase
// templates with names, products and numbers filled in. Two tasks share the tickets: classification (the
// answer is the category word) and replies in one company's tone ("Nimbus Support").
import { createRng, type Rng } from "../../src/random.ts";

export const CATEGORIES = ["billing", "technical", "account", "shipping", "feature"] as const;
export type Category = (typeof CATEGORIES)[number];

const ISSUES: Record<Category, string[]> = {
  billing: [
    "I was charged twice for my {plan} plan this month",
    "my invoice {num} shows the wrong amount",
    "please refund the payment I made on {day}",
    "the card payment for order {num} failed but the money is gone",
    "why did my subscription price go up",
  ],
  technical: [
    "the app crashes every time I open the {page} page",
    "I get error {num} when I try to sync my files",
    "the website is very slow and pages do not load",
    "the {product} stopped working after the last update",
    "the export button does nothing on {day}",
  ],
  account: [
    "I cannot log in to my account since {day}",
    "please help me reset my password",
    "I want to change the email on my account",
    "my account was locked after too many attempts",
    "how do I delete my account and my data",
  ],
  shipping: [
    "my package {num} has not arrived yet",
    "the tracking page for order {num} has not moved since {day}",
    "the box arrived damaged and the {product} is broken",
    "can you ship my order to a different address",
    "the delivery was left at the wrong door",
  ],
  feature: [
    "it would be great if the {page} page had a dark mode",
    "please add an option to export reports as a spreadsheet",
    "I would like to share folders with my whole team",
    "could you add a calendar view to the {product}",
    "we need a way to schedule messages for later",
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
  billing: "I have checked your billing history and our billing team will correct it within two days.",
  technical: "I am sorry about the trouble. Our engineers are looking at it, and a fix is on the way.",
  account: "For your safety I have sent a secure link to the email on your account.",
  shipping: "I have asked our shipping partner for an update, and I will write as soon as I hear back.",
  feature: "Thank you for the idea! I have shared it with our product team.",
};

// Short on purpose: every prompt token is paid for on each training step of the two-minute demo.
export const SYSTEM_CLASSIFY = "Category?";
export const SYSTEM_REPLY = "Reply as Nimbus Support.";

export interface Ticket {
  category: Category;
  name: string;
  text: string;
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.nextU32() % items.length] as T;

function fill(rng: Rng, template: string): string {
  return template
    .replace("{plan}", pick(rng, PLANS))
    .replace("{page}", pick(rng, PAGES))
    .replace("{product}", pick(rng, PRODUCTS))
    .replace("{day}", pick(rng, DAYS))
    .replace("{num}", String(1000 + (rng.nextU32() % 9000)));
}

export function makeTickets(count: number, seed: number): Ticket[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, (_, i) => {
    const category = CATEGORIES[i % CATEGORIES.length] as Category;
    const name = pick(rng, NAMES);
    const body = fill(rng, pick(rng, ISSUES[category]));
    const text = [pick(rng, OPENERS), `${body[0]?.toUpperCase()}${body.slice(1)}.`, pick(rng, CLOSERS), name]
      .filter(Boolean)
      .join(" ");
    return { category, name, text };
  });
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

export function replyRow(t: Ticket): Record<string, unknown> {
  const reply = `Hi ${t.name}, thanks for writing to Nimbus! ${REPLIES[t.category]} Warm wishes, Nimbus.`;
  return {
    messages: [
      { role: "system", content: SYSTEM_REPLY },
      { role: "user", content: t.text },
      { role: "assistant", content: reply },
    ],
  };
}
