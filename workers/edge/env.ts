// The Hono environment of the edge: bindings from wrangler, and what middleware puts on the context.
import type { Scope } from "../../src/contracts/keys.ts";
import type { RunnerClient } from "./pool/runner-client.ts";
import type { AppliedLimits } from "./tenants/key-store.ts";

/** Who is calling: the deployment's bootstrap token, or a tenant's API key. */
export type Principal =
  | { kind: "operator" }
  | {
      kind: "key";
      keyId: string;
      tenant: string;
      scopes: Scope[];
      lastUsedAt: string | null;
      /** The key's and its tenant's limits, read with the key (limits/admit.ts applies them). */
      limits: AppliedLimits;
    };

export interface AppDeps {
  /** Builds the runner client per request, so tests can intercept the outbound call at `fetch`. */
  runner: (env: Env) => RunnerClient;
}

export interface EdgeEnv {
  Bindings: Env;
  Variables: {
    requestId: string;
    principal: Principal;
    deps: AppDeps;
  };
}
