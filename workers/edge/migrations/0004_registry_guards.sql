-- Registry guards kept in D1 itself, so no code path and no race can break them.

-- An alias never points at a yanked version: not by moving it onto one, not by yanking the version under it.
-- The stores check the same conditions inside their statements and answer 409 with a message; these triggers
-- are the backstop for any writer that does not (docs/architecture.md#registry).
CREATE TRIGGER aliases_never_on_yanked_insert
BEFORE INSERT ON aliases
WHEN EXISTS (
  SELECT 1 FROM adapter_versions
  WHERE adapter_id = NEW.adapter_id AND version = NEW.version AND yanked_at IS NOT NULL
)
BEGIN
  SELECT RAISE(ABORT, 'an alias cannot point at a yanked version');
END;

CREATE TRIGGER aliases_never_on_yanked_update
BEFORE UPDATE OF version ON aliases
WHEN EXISTS (
  SELECT 1 FROM adapter_versions
  WHERE adapter_id = NEW.adapter_id AND version = NEW.version AND yanked_at IS NOT NULL
)
BEGIN
  SELECT RAISE(ABORT, 'an alias cannot point at a yanked version');
END;

CREATE TRIGGER yank_refused_under_alias
BEFORE UPDATE OF yanked_at ON adapter_versions
WHEN NEW.yanked_at IS NOT NULL AND EXISTS (
  SELECT 1 FROM aliases WHERE adapter_id = NEW.adapter_id AND version = NEW.version
)
BEGIN
  SELECT RAISE(ABORT, 'a version an alias points at cannot be yanked');
END;

-- A staged upload is published at most once. The first publish inserts its claim; a racing publish of the
-- same upload finds the row and answers 409. Claims outlive their upload (the ids are random UUIDs, never
-- reused), so a claim is never released while another request could still read the upload.
CREATE TABLE upload_claims (
  tenant TEXT NOT NULL,
  upload TEXT NOT NULL,
  claimed_at TEXT NOT NULL,
  PRIMARY KEY (tenant, upload)
);

-- Multipart uploads in flight and the parts each has received. R2 says neither which listed part is wrong
-- nor, reliably, whether an upload id exists, so the edge keeps both to answer caller mistakes by name
-- (404 for an unknown upload id, 400 naming the part). Rows go when the upload completes or is aborted.
CREATE TABLE multipart_uploads (
  tenant TEXT NOT NULL,
  upload TEXT NOT NULL,
  upload_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant, upload)
);

CREATE TABLE multipart_parts (
  tenant TEXT NOT NULL,
  upload TEXT NOT NULL,
  part_number INTEGER NOT NULL,
  etag TEXT NOT NULL,
  uploaded_at TEXT NOT NULL,
  PRIMARY KEY (tenant, upload, part_number)
);
