-- The registry. Base models are global (the runner pool serves them; the operator registers them); everything
-- else belongs to exactly one tenant, and every tenant-owned query filters on tenant.

-- A tenant is known by its name everywhere (keys, URLs, audit), so the name is the key.
CREATE TABLE tenants (
  name TEXT PRIMARY KEY,
  created_at TEXT NOT NULL
);

-- Only the sha256 of a key is stored; `prefix` lets people tell their keys apart.
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  name TEXT NOT NULL,
  key_hash TEXT NOT NULL UNIQUE,
  prefix TEXT NOT NULL,
  scopes TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT,
  last_used_at TEXT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant);

CREATE TABLE base_models (
  id TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  created_at TEXT NOT NULL
);

-- An adapter name is bound to one base model: aliases then always resolve to weights that fit it.
CREATE TABLE adapters (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  name TEXT NOT NULL,
  base_model_id TEXT NOT NULL REFERENCES base_models(id),
  description TEXT,
  created_at TEXT NOT NULL,
  UNIQUE (tenant, name)
);

CREATE TABLE adapter_versions (
  adapter_id TEXT NOT NULL REFERENCES adapters(id),
  version INTEGER NOT NULL,
  runner_adapter_id TEXT NOT NULL,
  weights_sha256 TEXT NOT NULL,
  weights_size INTEGER NOT NULL,
  config TEXT NOT NULL,
  manifest TEXT NOT NULL,
  created_at TEXT NOT NULL,
  yanked_at TEXT,
  PRIMARY KEY (adapter_id, version)
);
CREATE INDEX adapter_versions_blob ON adapter_versions(weights_sha256);

-- Invariant 1: a published version never changes; only its yank mark may be set.
CREATE TRIGGER adapter_versions_immutable
BEFORE UPDATE OF adapter_id, version, runner_adapter_id, weights_sha256, weights_size, config, manifest, created_at
ON adapter_versions
BEGIN
  SELECT RAISE(ABORT, 'adapter versions are immutable');
END;

CREATE TABLE aliases (
  adapter_id TEXT NOT NULL REFERENCES adapters(id),
  alias TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (adapter_id, alias),
  FOREIGN KEY (adapter_id, version) REFERENCES adapter_versions(adapter_id, version)
);

CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant TEXT,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  details TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log(tenant, id);
