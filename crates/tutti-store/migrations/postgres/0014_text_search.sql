-- Text search over each task's row: its values, one per line, lower-cased,
-- kept in `search_text` (written with the row at import) under a GIN
-- trigram index, so `search_text LIKE '%term%'` reads the index for a rare
-- term and a cheap column for a common one. `pg_trgm` ships with
-- PostgreSQL (contrib) and is a trusted extension: the database's owner may
-- create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE tasks ADD COLUMN search_text TEXT NOT NULL DEFAULT '';

UPDATE tasks SET search_text = COALESCE(
    (SELECT lower(string_agg(value, E'\n')) FROM json_each_text(data::json)), '');

CREATE INDEX tasks_search ON tasks USING gin (search_text gin_trgm_ops);
