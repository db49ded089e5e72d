// Cold starts for `npm run bench:edge`: first-token time of a never-seen adapter minus a warm one, beside
// the pure transfer time of its bytes over loopback HTTP (target: cold − warm <= 1.5 × transfer + 20 ms).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { PEFT_WEIGHTS_FILE } from "../../src/adapters/peft-files.ts";
import { writeDemoAdapter } from "../demo-model/adapter.ts";
import { publishSources } from "../lib/dev-setup.ts";
import { median, post, startSink } from "./edge-load.ts";
import type { ColdRow } from "./edge-report.ts";

const ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

async function timed(send: () => Promise<Response>): Promise<{ ms: number; res: Response }> {
  const started = performance.now();
  const res = await send();
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`request failed: ${res.status}`);
  return { ms: performance.now() - started, res };
}

export async function coldStarts(
  stack: { edgeUrl: string; key: string },
  work: string,
  quick: boolean,
): Promise<ColdRow[]> {
  const sink = await startSink();
  const kinds = [
    { prefix: "small", rank: 8, targetModules: ["q_proj", "v_proj"] },
    { prefix: "large", rank: 64, targetModules: ALL_LINEAR },
  ];
  const rows: ColdRow[] = [];
  for (const kind of kinds) {
    for (let i = 0; i < (quick ? 2 : 5); i++) {
      const name = `${kind.prefix}-${i}`;
      const dir = join(work, "adapters", name);
      await writeDemoAdapter(dir, {
        seed: 500 + rows.length,
        rank: kind.rank,
        targetModules: kind.targetModules,
      });
      await publishSources(stack.edgeUrl, stack.key, "demo-llama", [{ name, dir }]);
      const send = post(stack.edgeUrl, stack.key, name);
      const cold = await timed(send);
      const warm: number[] = [];
      for (let k = 0; k < 5; k++) warm.push((await timed(send)).ms);
      const bytes = await readFile(join(dir, PEFT_WEIGHTS_FILE));
      const transfers: number[] = [];
      for (let k = 0; k < 5; k++) {
        transfers.push((await timed(() => fetch(sink.url, { method: "PUT", body: bytes }))).ms);
      }
      const load = /load;dur=([\d.]+)/.exec(cold.res.headers.get("server-timing") ?? "")?.[1];
      rows.push({
        adapter: name,
        bytes: bytes.length,
        cold: cold.ms,
        warm: median(warm),
        transfer: median(transfers),
        load: Number(load ?? Number.NaN),
      });
    }
  }
  await sink.close();
  return rows;
}
