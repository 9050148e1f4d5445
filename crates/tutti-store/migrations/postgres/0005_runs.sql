-- Workflow runs: the program as written, its uploaded files, and each
-- step's status as the runner last reported it. A run's tables live in the
-- run's own file beside the store (see the engine); this is what every
-- process needs to list, show and steer runs.

CREATE TABLE runs (
    id             BIGSERIAL PRIMARY KEY,
    workspace_id   BIGINT  NOT NULL REFERENCES workspaces(id),
    name           TEXT    NOT NULL,
    format         TEXT    NOT NULL,
    program        TEXT    NOT NULL,
    params         TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    error          TEXT,
    generation     BIGINT  NOT NULL DEFAULT 0,
    after_run      BIGINT  REFERENCES runs(id),
    webhook_url    TEXT,
    webhook_secret TEXT,
    callback_secret TEXT    NOT NULL,
    webhook_state  TEXT,
    webhook_attempts BIGINT NOT NULL DEFAULT 0,
    webhook_next_at  BIGINT,
    created_by     BIGINT  NOT NULL REFERENCES users(id),
    created_at     BIGINT  NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT,
    updated_at     BIGINT  NOT NULL
);

CREATE INDEX runs_workspace ON runs (workspace_id, id);
CREATE INDEX runs_active ON runs (status);

CREATE TABLE run_files (
    run_id  BIGINT NOT NULL REFERENCES runs(id),
    name    TEXT   NOT NULL,
    content BYTEA  NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE run_nodes (
    run_id      BIGINT NOT NULL REFERENCES runs(id),
    idx         BIGINT NOT NULL,
    op          TEXT   NOT NULL,
    label       TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    rows_in     BIGINT NOT NULL DEFAULT 0,
    rows_out    BIGINT NOT NULL DEFAULT 0,
    started_at  BIGINT,
    finished_at BIGINT,
    error       TEXT,
    job_id      BIGINT REFERENCES jobs(id),
    PRIMARY KEY (run_id, idx)
);
