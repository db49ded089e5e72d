// The console's experiment page says what `npm run demo:traffic` prints after its table: the verdict of the
// difference intervals (src/experiments/verdict.ts) and which variant to promote, or that there is none yet.
import { beforeEach, expect, it } from "vitest";
import { call, json } from "./support/edge.ts";
import { answerAs, createRoute, type Fixture, infer, twoVersions } from "./support/experiment.ts";
import { type Browser, page, signedIn, textOf } from "./support/console.ts";

let f: Fixture;
let b: Browser;

beforeEach(async () => {
  f = await twoVersions();
  answerAs(f);
  b = await signedIn(f.key);
});

/** One request per user; feedback 1 for every treatment answer, and for control `controlScore(i)`. */
async function traffic(users: number, controlScore: (i: number) => number): Promise<void> {
  for (let i = 0; i < users; i++) {
    const r = await infer(f.key, "bot", { user: `user-${i}` });
    expect(r.status).toBe(200);
    const variant = r.res.headers.get("x-variant");
    const score = variant === "treatment" ? 1 : controlScore(i);
    const id = r.res.headers.get("x-request-id") as string;
    await json(await call("POST", "/v1/feedback", { token: f.key, json: { request_id: id, score } }), 200);
  }
}

const split = {
  name: "bot",
  salt: "s1",
  variants: [
    { name: "control", target: "support@prod", weight: 5000 },
    { name: "treatment", target: "support@2", weight: 5000 },
  ],
};

it("names the better variant and the one to promote once its interval clears 0", async () => {
  await createRoute(f.key, split);
  await traffic(40, (i) => (i % 3 === 0 ? 1 : 0));
  const text = textOf((await page(b, "/console/experiments/bot")).html);
  expect(text).toMatch(
    /Verdict treatment is better than control at 95% confidence: feedback \+0\.\d{3} \[\+0\.\d{3}, \+\d\.\d{3}\], the whole interval above 0/,
  );
  expect(text).toContain("Promote treatment: it beats control at 95% confidence.");
});

it("says there is no difference yet while the interval spans 0, and names no winner", async () => {
  await createRoute(f.key, split);
  await traffic(12, (i) => (i % 4 === 0 ? 0 : 1));
  const text = textOf((await page(b, "/console/experiments/bot")).html);
  expect(text).toContain("treatment against control: no difference at 95% confidence yet");
  expect(text).not.toContain("Promote treatment:");
});
