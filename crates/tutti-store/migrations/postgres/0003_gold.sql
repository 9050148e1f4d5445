-- Control questions: tasks with a known answer (state 'gold'), whether each
-- answer to one was right, and each worker's record on them per job.

ALTER TABLE tasks ADD COLUMN gold TEXT;
ALTER TABLE assignments ADD COLUMN gold_correct BIGINT;
CREATE INDEX tasks_gold ON tasks(job_id, seq) WHERE state = 'gold';

CREATE TABLE job_gold (
    job_id     BIGINT  NOT NULL REFERENCES jobs(id),
    worker_id  BIGINT  NOT NULL REFERENCES users(id),
    seen       BIGINT  NOT NULL,
    correct    BIGINT  NOT NULL,
    stopped_at BIGINT,
    PRIMARY KEY (job_id, worker_id)
);

-- A worker's answers in a job, counted on every lease of a job with control
-- questions.
CREATE INDEX assignments_submitted_worker ON assignments(job_id, worker_id) WHERE status = 'submitted';
