-- A worker's submitted answers of a job are found by
-- assignments_worker_done (worker_id, job_id, finished_at), which serves
-- the same equality look-up; keeping a second index over the same rows
-- only made every submit write it too.
DROP INDEX IF EXISTS assignments_submitted_worker;
