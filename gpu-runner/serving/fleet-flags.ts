// The runner's fleet flags (README, "Runner fleets"): --join <edge-url>, --advertise-url, --capacity, and the
// fleet key from FLEET_TOKEN or --fleet-token-file, never from argv, so it does not show in `ps`.
import { readFileSync } from "node:fs";
import type { ArgsDef } from "citty";
import { AppError } from "../../src/errors.ts";

export interface FleetFlags {
  edgeUrl: string;
  token: string;
  /** Where the edge reaches this runner; null: http://<host>:<port> as it listens. */
  advertiseUrl: string | null;
  capacity: number;
}

export const FLEET_ARGS = {
  join: {
    type: "string",
    description: "edge URL to join as a fleet member (fleet key: FLEET_TOKEN or --fleet-token-file)",
  },
  "fleet-token-file": {
    type: "string",
    description: "file holding the fleet key (scope runner), instead of FLEET_TOKEN",
  },
  "advertise-url": {
    type: "string",
    description: "URL the edge reaches this runner at. Default: http://<host>:<port>",
  },
  capacity: {
    type: "string",
    description: "relative capacity in the fleet (as RUNNERS' weight), > 0; default 1",
  },
} satisfies ArgsDef;

function bad(flag: string, rule: string, value: unknown): AppError {
  return new AppError("invalid_request", `--${flag} must be ${rule}; got ${JSON.stringify(value)}`, {
    param: flag,
  });
}

const URL_RULE = /^https?:\/\/[^/\s]+(\/\S*)?$/;

type Raw = { join?: string; "fleet-token-file"?: string; "advertise-url"?: string; capacity?: string };

export function parseFleetFlags(args: Raw, env: Record<string, string | undefined>): FleetFlags | null {
  if (args.join === undefined) {
    for (const flag of ["fleet-token-file", "advertise-url", "capacity"] as const) {
      if (args[flag] !== undefined)
        throw bad(flag, "given with --join (it only matters in a fleet)", args[flag]);
    }
    return null;
  }
  if (!URL_RULE.test(args.join)) throw bad("join", "the edge's http(s) URL", args.join);
  const advertise = args["advertise-url"];
  if (advertise !== undefined && !URL_RULE.test(advertise))
    throw bad("advertise-url", "an http(s) URL", advertise);
  const capacity = args.capacity === undefined ? 1 : Number(args.capacity);
  if (!(capacity > 0 && capacity <= 1000)) throw bad("capacity", "a number in (0, 1000]", args.capacity);
  let token = env.FLEET_TOKEN ?? "";
  const file = args["fleet-token-file"];
  if (file !== undefined) {
    try {
      token = readFileSync(file, "utf8").trim();
    } catch (error) {
      throw bad("fleet-token-file", `a readable file (${(error as Error).message})`, file);
    }
  }
  if (token === "") {
    throw new AppError(
      "invalid_request",
      "--join needs the fleet key (scope runner): set FLEET_TOKEN or --fleet-token-file <path>; got neither",
      { param: "join" },
    );
  }
  return {
    edgeUrl: args.join.replace(/\/+$/, ""),
    token,
    advertiseUrl: advertise === undefined ? null : advertise.replace(/\/+$/, ""),
    capacity,
  };
}
