-- The text a search reads is now made by Tutti, by the same function as on
-- PostgreSQL (values lower-cased in full Unicode, `true` and `false` as
-- written), and kept per job in `task_search`, which the FTS5 trigram index
-- reads as its content: a search of one- or two-character words scans one
-- job's text instead of every job's. The background indexer fills both
-- again from the start.
DROP TABLE task_text;

CREATE TABLE task_search (
    id     INTEGER PRIMARY KEY REFERENCES tasks(id),
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    text   TEXT    NOT NULL
);

CREATE INDEX task_search_job ON task_search (job_id, id);

CREATE VIRTUAL TABLE task_text USING fts5(
    text, content = 'task_search', content_rowid = 'id', tokenize = 'trigram'
);

UPDATE task_text_progress SET through_id = 0;
