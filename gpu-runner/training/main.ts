// `npm run train -- --base <model dir> --data <jsonl> --out <dir> [--publish --name <name> [--canary 10]]`:
// trains a LoRA adapter on the runner's own graphs, evaluates it against the champion (--champion, else
// `<name>@prod` from the edge with --publish or --endpoint/--token, else the base model), and writes a PEFT directory with a model card. `--publish` publishes it with publish-adapter's
// client and checks, the evaluation as manifest metrics; `--canary` puts a share of a route's traffic on it.
import { defineCommand } from "citty";
import { EdgeError } from "../../cli/edge-client.ts";
import { runChecked } from "../../cli/flags.ts";
import { AppError } from "../../src/errors.ts";
import { type Champion, championEdge, resolveChampion } from "./program/champion.ts";
import { runTraining } from "./program/pipeline.ts";
import { createProgress } from "./program/progress.ts";
import { releaseTarget, releaseTrained } from "./program/release.ts";
import { parseSettings, type TrainSettings } from "./program/settings.ts";

const str = (description: string) => ({ type: "string" as const, description });
const flag = (description: string) => ({ type: "boolean" as const, description });

const command = defineCommand({
  meta: { name: "train", description: "Train a LoRA adapter on a Hugging Face base model from JSONL data" },
  args: {
    base: { ...str("base model directory (config.json, safetensors, tokenizer.json)"), required: true },
    data: { ...str('JSONL: {"messages"}, {"prompt","completion"} or {"text"} per line'), required: true },
    out: { ...str("output directory (PEFT adapter, model card, checkpoints)"), required: true },
    val: str("held-out JSONL (default: a --val-fraction split of --data)"),
    valFraction: str("share of --data held out (default 0.1)"),
    r: str("LoRA rank (default 16)"),
    alpha: str("LoRA alpha (default 2·r)"),
    rslora: flag("scale by alpha/√r (rsLoRA)"),
    targets: str('modules: "all-linear" (default) or a list like q_proj,v_proj'),
    dropout: str("LoRA dropout (default 0)"),
    optimizer: str("adamw (default) or sgd"),
    lr: str("peak learning rate (default 2e-4)"),
    weightDecay: str("AdamW weight decay (default 0)"),
    warmup: str("warm-up steps (default 0)"),
    schedule: str("constant, linear (default) or cosine decay"),
    epochs: str("epochs (default 3)"),
    maxSteps: str("stop after N optimizer steps (default: all epochs)"),
    batchSize: str("rows per micro-batch (default 4)"),
    accumulation: str("micro-batches per optimizer step (default 1)"),
    maxGradNorm: str("clip the global gradient norm (default 1; 0 = off)"),
    seed: str("seed for init, shuffling, split and dropout (default 0)"),
    threads: str("CPU threads (default 2)"),
    maxSessions: str("graph sessions kept open, one per padded length (default 3; each holds the base)"),
    allTokens: flag("count prompt tokens in the loss too"),
    maxTokens: str("longest row in tokens (default 1024)"),
    checkpointEvery: str("write a checkpoint every N steps (default: none)"),
    resume: str("resume from a checkpoint directory"),
    init: str("start from an existing PEFT adapter (continue a version)"),
    champion: str(
      "PEFT adapter to compare against (default: <name>@prod from the edge, else the base model)",
    ),
    skipBadRows: flag("train without bad rows instead of failing (they are still reported)"),
    json: flag("JSON lines even on a terminal"),
    publish: flag("publish the result (needs --name, and --endpoint/--token or EDGE_URL/EDGE_TOKEN)"),
    name: str("adapter name in the registry"),
    baseId: str("base model id at the edge (default: the base directory's name)"),
    alias: str("alias to move to the new version on publish"),
    canary: str("with --publish: percent of the route's traffic on the new version (e.g. 10)"),
    route: str("the canary's route (default: <name>-canary)"),
    endpoint: str("edge URL (or EDGE_URL)"),
    token: str("API key with scope publish (or EDGE_TOKEN)"),
  },
  async run({ args }) {
    let settings: TrainSettings;
    let target: ReturnType<typeof releaseTarget>;
    try {
      settings = parseSettings(args as Record<string, unknown>);
      // Before training, so a missing endpoint does not cost a whole run.
      target = releaseTarget(settings, process.env);
    } catch (error) {
      fail(error);
    }
    const sink = createProgress(settings.json);
    let champion: Champion | undefined;
    try {
      // Before training too: an unreachable edge or a corrupt download fails the run at once.
      champion = await resolveChampion(settings, championEdge(settings, target));
      const report = await runTraining(settings, sink, champion);
      sink.stop();
      sink.event("done", { out: settings.out, adapter: report.adapter, champion: report.champion });
      if (target) await releaseTrained(settings, report, target, sink);
    } catch (error) {
      sink.stop();
      await champion?.dispose();
      fail(error);
    }
    await champion?.dispose();
  },
});

function fail(error: unknown): never {
  console.error(`error: ${(error as Error).message ?? String(error)}`);
  const details = error instanceof AppError || error instanceof EdgeError ? error.details : [];
  for (const d of details.length > 1 ? details.slice(0, 20) : []) console.error(`  - ${d}`);
  process.exit(1);
}

await runChecked(command);
