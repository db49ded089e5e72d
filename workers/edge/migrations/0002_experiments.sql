-- Routes (A/B experiments) and what they record. A route belongs to one tenant; its split, salt and
-- guardrails live in `config` (JSON, parsed with RouteConfigSchema on read); `version` bumps on every change
-- so writers compare-and-set on it, and exposures remember the split they were assigned under.
CREATE TABLE routes (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  name TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'paused', 'concluded')),
  config TEXT NOT NULL,
  version INTEGER NOT NULL,
  winner TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (tenant, name)
);

-- One row per request and variant that served it (a shadow copy is its own row). Request ids may come from
-- callers, so they are unique per tenant only.
CREATE TABLE exposures (
  tenant TEXT NOT NULL,
  request_id TEXT NOT NULL,
  route_id TEXT NOT NULL REFERENCES routes(id),
  route_version INTEGER NOT NULL,
  variant TEXT NOT NULL,
  shadow INTEGER NOT NULL,
  adapter TEXT,
  subject_hash TEXT,
  status INTEGER NOT NULL,
  error INTEGER NOT NULL,
  latency_ms REAL NOT NULL,
  prompt_tokens INTEGER,
  completion_tokens INTEGER,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant, request_id, variant)
);
CREATE INDEX exposures_route ON exposures(route_id, variant, latency_ms);

-- The latest outcome a caller reported for one of its requests.
CREATE TABLE feedback (
  tenant TEXT NOT NULL,
  request_id TEXT NOT NULL,
  score REAL,
  label TEXT,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant, request_id)
);

-- A batch statement `INSERT INTO batch_assertions (changed) VALUES (changes())` aborts the whole D1 batch
-- (a transaction) unless the statement before it changed exactly one row: promotion uses it so the alias
-- move and the route's conclusion commit together or not at all. Rows never outlive their batch.
CREATE TABLE batch_assertions (
  changed INTEGER NOT NULL CHECK (changed = 1)
);
