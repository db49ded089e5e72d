// The two registry calls a canary needs beside publishing: an adapter's aliases (to find the champion) and a
// compare-and-set alias move. Answers are parsed; refusals become EdgeError with the edge's own message.
import { z } from "zod";
import { createEdgeSender, type EdgeClientOptions, parseEdgeAnswer } from "../../../cli/edge-client.ts";

const AdapterAliasesSchema = z.looseObject({ aliases: z.record(z.string(), z.number().int()) });
const MovedSchema = z.looseObject({ alias: z.string(), version: z.number().int() });

export function createAliasClient(options: EdgeClientOptions) {
  const send = createEdgeSender(options);
  const adapter = (name: string) => `/admin/adapters/${encodeURIComponent(name)}`;
  return {
    /** alias → version; empty when the adapter does not exist yet. */
    async aliases(name: string): Promise<Record<string, number>> {
      const res = await send("GET", adapter(name));
      if (res.status === 404) {
        await res.body?.cancel();
        return {};
      }
      return (await parseEdgeAnswer(res, AdapterAliasesSchema, `adapter ${name}`)).aliases;
    },
    /** Compare-and-set: `expected` is where the alias points now, or null for "must not exist yet". */
    async move(name: string, alias: string, version: number, expected: number | null): Promise<void> {
      const res = await send("PUT", `${adapter(name)}/aliases/${encodeURIComponent(alias)}`, {
        version,
        expected,
      });
      await parseEdgeAnswer(res, MovedSchema, `alias ${name}@${alias}`);
    },
  };
}

export type AliasClient = ReturnType<typeof createAliasClient>;
