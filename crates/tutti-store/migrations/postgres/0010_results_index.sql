-- The results browser counts a job's tasks by state, label and confidence
-- on every view (the charts and the filter's totals). Covering those
-- columns lets the counts read this index alone instead of every task row
-- with its data: about 10 ms instead of 250 ms at 100,000 tasks.
CREATE INDEX tasks_results ON tasks (job_id, state, label, confidence);
