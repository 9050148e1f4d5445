-- Under Dawid-Skene re-aggregation, each worker's fitted confusion matrix
-- (JSON: true label -> answer -> probability), by which adaptive
-- redundancy weighs their next answers.

ALTER TABLE job_workers ADD COLUMN confusion TEXT;
