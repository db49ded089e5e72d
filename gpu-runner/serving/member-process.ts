// The process side of a fleet member, shared by the runner (main.ts) and the vLLM sidecar
// (scripts/vllm-sidecar.ts): listen behind the drain gate, join the edge once listening, and drain on SIGTERM,
// SIGINT or the operator's word, then exit 0 (README, "Deploying it": systemd's KillSignal, Docker's STOPSIGNAL
// and the kubelet all send SIGTERM). It never builds an app or reads process.env: the composition roots pass
// the app, the flags and the process in.
import { serve } from "@hono/node-server";
import type { HeartbeatRequest, JoinRequest } from "../../src/contracts/fleet.ts";
import { type DrainGate, drainer, FleetMember } from "./fleet.ts";
import type { FleetFlags } from "./fleet-flags.ts";

type Handler = (request: Request) => Response | Promise<Response>;

/** The parts of `process` this uses, so a caller can pass its own. */
export interface MemberHost {
  on(signal: "SIGTERM" | "SIGINT", listener: () => void): unknown;
  exit(code: number): never;
}

export interface MemberProcessOptions {
  /** Log prefix: "runner", "vllm-sidecar". */
  name: string;
  /** The app's fetch; the gate wraps it, and the app reads the gate for /ready. */
  fetch: Handler;
  gate: DrainGate;
  host: string;
  port: number;
  /** --join and the rest; null: not a fleet member, SIGTERM still drains. */
  fleet: FleetFlags | null;
  /** What the member registers and heartbeats, given where the edge reaches it and its --capacity. */
  membership(where: { url: string; capacity: number }): {
    info: JoinRequest;
    report(): Omit<HeartbeatRequest, "draining">;
  };
  /** Called once listening, with the bound port (0 in the flags picks one). */
  onListening(port: number): void;
  /** Frees what the program holds beyond the listener (the engine); runs after the running requests end. */
  close?(): Promise<void>;
  process: MemberHost;
  log?: (line: string) => void;
  error?: (line: string) => void;
}

export interface MemberProcess {
  /** Drains once (however often asked) and exits 0. */
  stop(): Promise<void>;
  /** The fleet membership once listening with --join; null before or without it. */
  member(): FleetMember | null;
}

export function startMemberProcess(o: MemberProcessOptions): MemberProcess {
  const log = o.log ?? console.log;
  const error = o.error ?? console.error;
  let member: FleetMember | null = null;
  let stopping = false;
  const server = serve({ fetch: o.gate.wrap(o.fetch), hostname: o.host, port: o.port }, (info) => {
    o.onListening(info.port);
    // a signal that came while the socket was opening has already drained: joining now would only leave again
    if (o.fleet === null || stopping) return;
    const { fleet } = o;
    const url = fleet.advertiseUrl ?? `http://${o.host}:${info.port}`;
    const membership = o.membership({ url, capacity: fleet.capacity });
    member = new FleetMember({
      edgeUrl: fleet.edgeUrl,
      token: fleet.token,
      ...membership,
      onDrainRequested: () => void stop(),
      log,
    });
    void member.join().catch((cause: unknown) => {
      // a drain before the edge accepted the join stops the join's retries: that is the drain, not a failure
      if (stopping) return;
      error(`${o.name}: ${(cause as Error).message}`);
      o.process.exit(1);
    });
  });
  const drain = drainer({
    gate: o.gate,
    get member() {
      return member;
    },
    close: async () => {
      server.close();
      await o.close?.();
    },
    log,
  });
  const stop = async (): Promise<void> => {
    stopping = true;
    try {
      await drain();
    } catch (cause) {
      error(`${o.name}: the drain failed (${(cause as Error).message})`);
      o.process.exit(1);
    }
    o.process.exit(0);
  };
  o.process.on("SIGTERM", () => void stop());
  o.process.on("SIGINT", () => void stop());
  return { stop, member: () => member };
}
