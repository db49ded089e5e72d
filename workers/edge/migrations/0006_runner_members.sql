-- Runner fleet membership (docs/architecture.md#runner-fleets). A member is a runner, or a vLLM server behind
-- its sidecar, that joined with a fleet key of scope `runner`; it stays in the pool while its lease is
-- current. Members are global, like base models: every tenant's traffic may reach any member serving the base.
-- Times are epoch milliseconds, so lease checks compare integers inside one statement.
CREATE TABLE runner_members (
  id TEXT PRIMARY KEY,
  -- One row per address: a runner that restarts and joins again replaces its old row.
  url TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('runner', 'vllm')),
  base_model TEXT NOT NULL,
  base_model_fingerprint TEXT,
  capacity REAL NOT NULL CHECK (capacity > 0),
  max_lora_rank INTEGER NOT NULL CHECK (max_lora_rank >= 1),
  -- JSON array of linear kinds (q_proj, ...).
  target_modules TEXT NOT NULL,
  slots INTEGER NOT NULL,
  context INTEGER NOT NULL,
  version TEXT NOT NULL,
  -- The fleet key it joined with (api_keys.id), for the audit trail and revocation.
  key_id TEXT NOT NULL,
  joined_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  lease_until INTEGER NOT NULL,
  -- Set by POST /admin/runners/{id}/drain or by the member's own heartbeat; a draining member gets no new
  -- requests and leaves when its running ones are done.
  draining_at INTEGER,
  in_flight INTEGER NOT NULL DEFAULT 0,
  -- JSON array of {adapterId, requests}, as the last heartbeat reported it.
  resident TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX runner_members_lease ON runner_members(lease_until);
