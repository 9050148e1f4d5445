-- A worker's submitted answers in a job by time: the task page shows how
-- many they answered today, and control-question checks count them.
CREATE INDEX assignments_worker_done ON assignments (worker_id, job_id, finished_at)
    WHERE status = 'submitted';
