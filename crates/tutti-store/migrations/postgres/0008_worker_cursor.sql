-- Where each worker is in a job: the furthest task they were leased. The
-- lease looks for the next task after it first, so a worker who answered
-- thousands of tasks that stay open for others (n > k) does not walk past
-- all of them again on every lease.
CREATE INDEX assignments_worker_cursor ON assignments (worker_id, job_id, task_id);
