-- Labels from re-aggregating a job's answers with a chosen method, and what
-- the fit says of each worker.

CREATE TABLE aggregates (
    job_id     INTEGER NOT NULL REFERENCES jobs(id),
    seq        INTEGER NOT NULL,
    method     TEXT    NOT NULL,
    label      TEXT,
    confidence REAL,
    posterior  TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_workers (
    job_id    INTEGER NOT NULL REFERENCES jobs(id),
    worker_id INTEGER NOT NULL REFERENCES users(id),
    method    TEXT    NOT NULL,
    skill     REAL    NOT NULL,
    PRIMARY KEY (job_id, worker_id)
);

CREATE TABLE job_aggregations (
    job_id        INTEGER PRIMARY KEY REFERENCES jobs(id),
    method        TEXT    NOT NULL,
    through_id    INTEGER NOT NULL,
    answers       INTEGER NOT NULL,
    iterations    INTEGER NOT NULL,
    aggregated_at INTEGER NOT NULL
);
