// One worker thread of the tokenizer pool (tokenizer-pool.ts): loads the model's tokenizer once, then renders
// chat templates and encodes prompts on request, so a long prompt costs this thread's time, never the
// runner's event loop. It answers each job with its ids (transferred, not copied) or the AppError it raised;
// it never decides deadlines or limits, which the pool enforces by terminating it.
import { parentPort, workerData } from "node:worker_threads";
import { AppError } from "../../../src/errors.ts";
import { loadTokenizer } from "./index.ts";
import type { PoolJob, WorkerReply } from "./tokenizer-pool.ts";

const port = parentPort;
if (port === null) throw new Error("tokenizer-worker.ts runs as a worker thread of tokenizer-pool.ts");

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

try {
  const tokenizer = await loadTokenizer((workerData as { modelDir: string }).modelDir);
  port.on("message", ({ id, job }: { id: number; job: PoolJob }) => {
    try {
      const ids =
        job.op === "chat"
          ? tokenizer.encode(tokenizer.renderChat(job.messages, job.options), {
              addSpecialTokens: job.addSpecialTokens,
            })
          : tokenizer.encode(job.text, { addSpecialTokens: job.addSpecialTokens });
      if (job.maxIds !== null && ids.length > job.maxIds) {
        reply({ type: "count", id, count: ids.length });
        return;
      }
      const out = Uint32Array.from(ids);
      reply({ type: "done", id, ids: out }, [out.buffer]);
    } catch (error) {
      if (error instanceof AppError) {
        const { code, message, param, details } = error;
        reply({ type: "refused", id, error: { code, message, param, details } });
      } else reply({ type: "fault", id, message: (error as Error).stack ?? String(error) });
    }
  });
  reply({ type: "ready" });
} catch (error) {
  reply({ type: "failed", message: (error as Error).stack ?? String(error) });
}
