-- Each worker's running figures in a job, kept by the same unit of work
-- that changes what they count, so the workers page reads a row per worker
-- instead of every answer: answers, skips, abandoned leases, the time spent
-- on answers (ms), answers on labeled tasks and how many of those agree
-- with the label. Filled here from what is already stored.
CREATE TABLE job_worker_counts (
    job_id     INTEGER NOT NULL REFERENCES jobs(id),
    worker_id  INTEGER NOT NULL REFERENCES users(id),
    answers    INTEGER NOT NULL DEFAULT 0,
    skipped    INTEGER NOT NULL DEFAULT 0,
    abandoned  INTEGER NOT NULL DEFAULT 0,
    answer_ms  INTEGER NOT NULL DEFAULT 0,
    on_labeled INTEGER NOT NULL DEFAULT 0,
    agreeing   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, worker_id)
);

INSERT INTO job_worker_counts (job_id, worker_id, answers, skipped, abandoned, answer_ms, on_labeled, agreeing)
SELECT a.job_id, a.worker_id,
    SUM(CASE WHEN a.status = 'submitted' THEN 1 ELSE 0 END),
    SUM(CASE WHEN a.status = 'skipped' THEN 1 ELSE 0 END),
    SUM(CASE WHEN a.status = 'abandoned' THEN 1 ELSE 0 END),
    SUM(CASE WHEN a.status = 'submitted' THEN a.finished_at - a.leased_at ELSE 0 END),
    SUM(CASE WHEN a.status = 'submitted' AND t.state = 'labeled' THEN 1 ELSE 0 END),
    SUM(CASE WHEN a.status = 'submitted' AND t.state = 'labeled' AND a.answer = t.label THEN 1 ELSE 0 END)
FROM assignments a JOIN tasks t ON t.id = a.task_id
WHERE a.status IN ('submitted', 'skipped', 'abandoned', 'excluded')
GROUP BY a.job_id, a.worker_id;

-- A job's answers and decided tasks per hour (hours since 1970, UTC), for
-- its activity charts, kept the same way.
CREATE TABLE job_hours (
    job_id  INTEGER NOT NULL REFERENCES jobs(id),
    at_hour INTEGER NOT NULL,
    answers INTEGER NOT NULL DEFAULT 0,
    decided INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, at_hour)
);

INSERT INTO job_hours (job_id, at_hour, answers, decided)
SELECT job_id, h, SUM(answers), SUM(decided) FROM (
    SELECT job_id, finished_at / 3600000 AS h, 1 AS answers, 0 AS decided
    FROM assignments WHERE status = 'submitted' AND finished_at IS NOT NULL
    UNION ALL
    SELECT job_id, decided_at / 3600000 AS h, 0 AS answers, 1 AS decided
    FROM tasks WHERE decided_at IS NOT NULL
) x GROUP BY job_id, h;
