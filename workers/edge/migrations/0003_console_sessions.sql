-- Operator console sign-ins. A session is kept here rather than in a signed cookie so that signing out ends it
-- at once, and so that revoking or expiring the API key it was opened with ends it too (every request joins
-- api_keys). Only the sha256 of the cookie's secret is stored; `csrf_token` is the synchronizer token every
-- form of the session must carry.
CREATE TABLE console_sessions (
  token_hash TEXT PRIMARY KEY,
  key_id TEXT NOT NULL REFERENCES api_keys(id),
  tenant TEXT NOT NULL REFERENCES tenants(name),
  csrf_token TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);
