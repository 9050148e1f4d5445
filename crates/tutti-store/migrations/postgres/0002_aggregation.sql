-- Labels from re-aggregating a job's answers with a chosen method, and what
-- the fit says of each worker.

CREATE TABLE aggregates (
    job_id     BIGINT  NOT NULL REFERENCES jobs(id),
    seq        BIGINT  NOT NULL,
    method     TEXT    NOT NULL,
    label      TEXT,
    confidence DOUBLE PRECISION,
    posterior  TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_workers (
    job_id    BIGINT  NOT NULL REFERENCES jobs(id),
    worker_id BIGINT  NOT NULL REFERENCES users(id),
    method    TEXT    NOT NULL,
    skill     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, worker_id)
);

CREATE TABLE job_aggregations (
    job_id        BIGINT PRIMARY KEY REFERENCES jobs(id),
    method        TEXT    NOT NULL,
    through_id    BIGINT  NOT NULL,
    answers       BIGINT  NOT NULL,
    iterations    BIGINT  NOT NULL,
    aggregated_at BIGINT  NOT NULL
);
