// Alias moves, promotions and yanks race without ever leaving an alias on a yanked version: each is one
// conditional D1 statement, and D1 itself refuses the state (docs/architecture.md#registry). Every test runs
// many rounds of racing requests and checks the invariant after each.
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { adapterFiles, call, demoBase, type ErrorBody, json, newTenant, publish } from "./support/edge.ts";
import { answerAs, chat, createRoute } from "./support/experiment.ts";

const ROUNDS = 16;
/**
 * How many turns of the event loop the yank waits before it starts, per round. A yank needs fewer D1 round
 * trips than a move or a promotion, so with no head start its write reaches D1 first; a turn later, the
 * other's does. Each test checks that both sides won some rounds, so both outcomes meet the invariant.
 */
const YANK_DELAYS = [0, 1, 2, 3];

async function after<T>(turns: number, start: () => Promise<T>): Promise<T> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  return await start();
}

/** Every alias, in any tenant, that points at a yanked version: must always be empty. */
async function aliasesOnYankedVersions(): Promise<string[]> {
  const { results } = await env.DB.prepare(
    `SELECT a.tenant || '/' || a.name || '@' || l.alias AS ref
     FROM aliases l
     JOIN adapter_versions v ON v.adapter_id = l.adapter_id AND v.version = l.version
     JOIN adapters a ON a.id = l.adapter_id
     WHERE v.yanked_at IS NOT NULL`,
  ).all<{ ref: string }>();
  return results.map((r) => r.ref);
}

interface Shown {
  aliases: Record<string, number>;
  versions: { version: number; yankedAt: string | null }[];
}

async function shown(key: string, name: string): Promise<Shown> {
  return await json<Shown>(await call("GET", `/admin/adapters/${name}`, { token: key }), 200);
}

/** The edge serves `model` (it resolves to an unyanked version); the fake runner answers every call. */
async function serves(key: string, model: string): Promise<number> {
  const res = await call("POST", "/v1/chat/completions", { token: key, json: chat(model) });
  await res.text();
  return res.status;
}

it("lets a yank and an alias move race without the alias ever pointing at the yanked version", async () => {
  const spec = await demoBase();
  const { key } = await newTenant();
  answerAs({ tenant: "", key, labels: new Map() });
  // Every form of move: compare-and-set on a version, create-only, and unconditional.
  const moves = [
    { alias: "prod", body: { version: 2, expected: 1 } },
    { alias: "canary", body: { version: 2, expected: null } },
    { alias: "prod", body: { version: 2 } },
  ];
  const winners = new Set<string>();
  for (let round = 0; round < ROUNDS; round++) {
    const name = `race-${round}`;
    await publish(key, name, adapterFiles(spec, { seed: 1 }), { alias: "prod" });
    await publish(key, name, adapterFiles(spec, { seed: 2 }));
    const move = moves[round % moves.length] ?? { alias: "prod", body: { version: 2 } };
    const moveIt = () =>
      call("PUT", `/admin/adapters/${name}/aliases/${move.alias}`, { token: key, json: move.body });
    const yankIt = () => call("POST", `/admin/adapters/${name}/versions/2/yank`, { token: key });
    const delay = YANK_DELAYS[round % YANK_DELAYS.length] ?? 0;
    const [moved, yanked] = await Promise.all([moveIt(), after(delay, yankIt)]);
    winners.add(moved.status === 200 ? "move" : "yank");

    expect([moved.status, yanked.status].sort()).toEqual([200, 409]);
    const refused = await json<ErrorBody>(moved.status === 409 ? moved : yanked, 409);
    expect(refused.error.code).toBe("conflict");
    if (yanked.status === 409) {
      expect(refused.error.message).toContain(`cannot be yanked while aliases point at it: ${move.alias}`);
    } else {
      expect(refused.error.message).toContain("yanked");
    }
    expect(await aliasesOnYankedVersions()).toEqual([]);

    const now = await shown(key, name);
    const v2 = now.versions.find((v) => v.version === 2);
    if (moved.status === 200) {
      expect(now.aliases[move.alias]).toBe(2);
      expect(v2?.yankedAt).toBeNull();
    } else {
      expect(now.aliases[move.alias]).toBe(move.alias === "prod" ? 1 : undefined);
      expect(v2?.yankedAt).not.toBeNull();
    }
    for (const alias of Object.keys(now.aliases)) expect(await serves(key, `${name}@${alias}`)).toBe(200);
  }
  expect(winners).toEqual(new Set(["move", "yank"]));
});

it("lets a promotion and a yank of the winning version race without the alias ever pointing at it yanked", async () => {
  const spec = await demoBase();
  const { key } = await newTenant();
  answerAs({ tenant: "", key, labels: new Map() });
  const winners = new Set<string>();
  for (let round = 0; round < ROUNDS; round++) {
    const name = `promo-${round}`;
    await publish(key, name, adapterFiles(spec, { seed: 1 }), { alias: "prod" });
    await publish(key, name, adapterFiles(spec, { seed: 2 }));
    const route = `bot-${round}`;
    await createRoute(key, {
      name: route,
      salt: "s",
      variants: [
        { name: "control", target: `${name}@prod`, weight: 5000 },
        { name: "treatment", target: `${name}@2`, weight: 5000 },
      ],
    });
    const promoteIt = () =>
      call("POST", `/admin/routes/${route}/promote`, {
        token: key,
        json: { variant: "treatment", alias: "prod" },
      });
    const yankIt = () => call("POST", `/admin/adapters/${name}/versions/2/yank`, { token: key });
    const delay = YANK_DELAYS[round % YANK_DELAYS.length] ?? 0;
    const [promoted, yanked] = await Promise.all([promoteIt(), after(delay, yankIt)]);
    winners.add(promoted.status === 200 ? "promote" : "yank");

    // Exactly one wins. A promotion that lost answers 409 (its alias move found the version yanked) or 404
    // (it resolved the variant after the yank); a yank that lost answers 409 naming the alias.
    expect([promoted.status, yanked.status].filter((s) => s === 200)).toHaveLength(1);
    expect(await aliasesOnYankedVersions()).toEqual([]);
    const now = await shown(key, name);
    const v2 = now.versions.find((v) => v.version === 2);
    const routeNow = await json<{ status: string }>(
      await call("GET", `/admin/routes/${route}`, { token: key }),
      200,
    );
    if (promoted.status === 200) {
      expect(yanked.status).toBe(409);
      expect((await json<ErrorBody>(yanked, 409)).error.message).toContain("aliases point at it: prod");
      expect([now.aliases.prod, v2?.yankedAt, routeNow.status]).toEqual([2, null, "concluded"]);
    } else {
      expect([404, 409]).toContain(promoted.status);
      expect(now.aliases.prod).toBe(1);
      expect(v2?.yankedAt).not.toBeNull();
      // The batch rolled back as a whole: the route did not conclude either.
      expect(routeNow.status).toBe("running");
    }
    expect(await serves(key, `${name}@prod`)).toBe(200);
  }
  expect(winners).toEqual(new Set(["promote", "yank"]));
});

it("answers racing yanks of one version alike: both succeed with the one yank time", async () => {
  const spec = await demoBase();
  const { key } = await newTenant();
  for (let round = 0; round < ROUNDS; round++) {
    const name = `twice-${round}`;
    await publish(key, name, adapterFiles(spec, { seed: 1 }));
    await publish(key, name, adapterFiles(spec, { seed: 2 }));
    const yankIt = () => call("POST", `/admin/adapters/${name}/versions/1/yank`, { token: key });
    const answers = await Promise.all([yankIt(), yankIt(), yankIt()]);
    const bodies = await Promise.all(answers.map((r) => json<{ yankedAt: string }>(r, 200)));
    expect(new Set(bodies.map((b) => b.yankedAt)).size).toBe(1);
    const trail = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'yank' AND target = ?",
    )
      .bind(`${name}@1`)
      .first<{ n: number }>();
    expect(trail?.n).toBe(1);
  }
});

it("refuses in D1 itself an alias on a yanked version and a yank under an alias, whoever writes", async () => {
  const spec = await demoBase();
  const { tenant, key } = await newTenant();
  await publish(key, "guarded", adapterFiles(spec, { seed: 1 }), { alias: "prod" });
  await publish(key, "guarded", adapterFiles(spec, { seed: 2 }));
  await json(await call("POST", "/admin/adapters/guarded/versions/2/yank", { token: key }), 200);
  const id = (
    await env.DB.prepare("SELECT id FROM adapters WHERE tenant = ? AND name = 'guarded'")
      .bind(tenant)
      .first<{ id: string }>()
  )?.id;
  await expect(
    env.DB.prepare("UPDATE aliases SET version = 2 WHERE adapter_id = ? AND alias = 'prod'").bind(id).run(),
  ).rejects.toThrow(/yanked/);
  await expect(
    env.DB.prepare(
      "INSERT INTO aliases (adapter_id, alias, version, updated_at) VALUES (?, 'beta', 2, 'now')",
    )
      .bind(id)
      .run(),
  ).rejects.toThrow(/yanked/);
  await expect(
    env.DB.prepare("UPDATE adapter_versions SET yanked_at = 'now' WHERE adapter_id = ? AND version = 1")
      .bind(id)
      .run(),
  ).rejects.toThrow(/alias/);
  expect(await aliasesOnYankedVersions()).toEqual([]);
});
