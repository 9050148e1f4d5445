-- Users, tokens, workspaces, jobs, tasks and assignments.
-- Times are milliseconds since the epoch; flags are 0/1 integers; JSON is text.

CREATE TABLE users (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    display_name TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    disabled     BIGINT  NOT NULL DEFAULT 0,
    created_at   BIGINT  NOT NULL
);

CREATE TABLE tokens (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT  NOT NULL REFERENCES users(id),
    name       TEXT    NOT NULL,
    hash       TEXT    NOT NULL UNIQUE,
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE workspaces (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_by BIGINT  NOT NULL REFERENCES users(id),
    created_at BIGINT  NOT NULL
);

CREATE TABLE memberships (
    workspace_id BIGINT  NOT NULL REFERENCES workspaces(id),
    user_id      BIGINT  NOT NULL REFERENCES users(id),
    role         TEXT    NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id BIGINT  NOT NULL REFERENCES workspaces(id),
    config       TEXT    NOT NULL,
    created_by   BIGINT  NOT NULL REFERENCES users(id),
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX jobs_workspace ON jobs(workspace_id, id);

CREATE TABLE tasks (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     BIGINT  NOT NULL REFERENCES jobs(id),
    seq        BIGINT  NOT NULL,
    data       TEXT    NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'open',
    label      TEXT,
    confidence DOUBLE PRECISION,
    decided_by TEXT,
    w_votes    TEXT    NOT NULL DEFAULT '{}',
    s_votes    TEXT    NOT NULL DEFAULT '{}',
    w_pending  BIGINT  NOT NULL DEFAULT 0,
    s_pending  BIGINT  NOT NULL DEFAULT 0,
    w_slots    BIGINT  NOT NULL,
    s_slots    BIGINT  NOT NULL,
    decided_at BIGINT,
    UNIQUE (job_id, seq)
);
CREATE INDEX tasks_open_for_workers ON tasks(job_id, seq) WHERE state = 'open' AND w_slots > 0;
CREATE INDEX tasks_open_for_stewards ON tasks(job_id, seq) WHERE state = 'open' AND s_slots > 0;
CREATE INDEX tasks_job_state ON tasks(job_id, state);

CREATE TABLE assignments (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          BIGINT  NOT NULL REFERENCES jobs(id),
    task_id         BIGINT  NOT NULL REFERENCES tasks(id),
    worker_id       BIGINT  NOT NULL REFERENCES users(id),
    side            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    leased_at       BIGINT  NOT NULL,
    deadline        BIGINT  NOT NULL,
    finished_at     BIGINT,
    answer          TEXT,
    idempotency_key TEXT,
    late            BIGINT  NOT NULL DEFAULT 0
);
-- One live claim (pending, answered or skipped) per person and task.
CREATE UNIQUE INDEX assignments_one_per_person ON assignments(task_id, worker_id)
    WHERE status IN ('pending', 'submitted', 'skipped');
CREATE INDEX assignments_pending_deadline ON assignments(deadline) WHERE status = 'pending';
CREATE INDEX assignments_pending_worker ON assignments(worker_id, job_id) WHERE status = 'pending';
CREATE INDEX assignments_submitted_job ON assignments(job_id, id) WHERE status = 'submitted';
