-- A version a runner refused to load (its validation answered 4xx: shapes, rank, non-finite values...). The
-- edge records the runner's reason once and answers 422 with it from then on instead of streaming the weights
-- again on every request. The columns are outside the immutability trigger's list on purpose: the weights
-- never change, only what the pool learned about them.
ALTER TABLE adapter_versions ADD COLUMN unservable_reason TEXT;
ALTER TABLE adapter_versions ADD COLUMN unservable_at TEXT;

-- Recorded once: a later refusal never rewrites the first reason.
CREATE TRIGGER adapter_versions_unservable_once
BEFORE UPDATE OF unservable_reason, unservable_at ON adapter_versions
WHEN OLD.unservable_reason IS NOT NULL
BEGIN
  SELECT RAISE(ABORT, 'a version is marked unservable once');
END;
