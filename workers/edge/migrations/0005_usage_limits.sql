-- Usage and limits per tenant (docs/decisions/0007-usage-metering.md).

-- Per-minute limits of a key and of a tenant (NULL: none), and the tenant's monthly token budget (NULL: none).
ALTER TABLE api_keys ADD COLUMN requests_per_minute INTEGER CHECK (requests_per_minute >= 1);
ALTER TABLE api_keys ADD COLUMN tokens_per_minute INTEGER CHECK (tokens_per_minute >= 1);
ALTER TABLE tenants ADD COLUMN requests_per_minute INTEGER CHECK (requests_per_minute >= 1);
ALTER TABLE tenants ADD COLUMN tokens_per_minute INTEGER CHECK (tokens_per_minute >= 1);
ALTER TABLE tenants ADD COLUMN monthly_token_budget INTEGER CHECK (monthly_token_budget >= 1);

-- Inference usage per tenant and hour, written only by the tenant's meter (a Durable Object), which holds the
-- absolute totals of each line and writes them again on every flush: a repeated flush changes nothing.
-- Empty strings stand for "none" (base model answers have adapter = the base id; requests outside a route
-- have route = '' and variant = ''), because SQLite never treats two NULLs in a key as equal.
CREATE TABLE usage_hourly (
  tenant TEXT NOT NULL REFERENCES tenants(name),
  hour TEXT NOT NULL,            -- the hour's start, 'YYYY-MM-DDTHH:00:00.000Z'
  key_id TEXT NOT NULL,
  adapter TEXT NOT NULL,         -- name@version, the base model id, or '' when `model` never resolved
  route TEXT NOT NULL,
  variant TEXT NOT NULL,
  shadow INTEGER NOT NULL CHECK (shadow IN (0, 1)),
  status INTEGER NOT NULL,       -- the HTTP status of the answer
  requests INTEGER NOT NULL,
  cancelled INTEGER NOT NULL,    -- streams the client left before the end
  cold_loads INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,   -- summed, for the mean
  PRIMARY KEY (tenant, hour, key_id, adapter, route, variant, shadow, status)
);
CREATE INDEX usage_hourly_hour ON usage_hourly(hour);
