-- Bulk labeling tasks (the Audience task API): what was asked, where the
-- task stands, and its counters as the labeling threads last reported
-- them. The rows themselves, and the checkpoint that commits with them,
-- live in the output database's `state` table.

CREATE TABLE label_tasks (
    task_id     TEXT    PRIMARY KEY,
    config      TEXT    NOT NULL,
    stat        TEXT    NOT NULL,
    prod_stat   TEXT,
    result      TEXT    NOT NULL,
    metrics     TEXT    NOT NULL,
    error       TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE INDEX label_tasks_created ON label_tasks (created_at);
