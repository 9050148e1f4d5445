-- Under adaptive redundancy a worker's next task is chosen among the open
-- tasks that already have answers weighed; this keeps that look-up to
-- those tasks instead of every open one. A k-of-n job's tasks carry no
-- evidence and never enter it.

CREATE INDEX tasks_started_for_workers ON tasks(job_id, seq)
    WHERE state = 'open' AND w_slots > 0 AND w_evidence <> '{}';
