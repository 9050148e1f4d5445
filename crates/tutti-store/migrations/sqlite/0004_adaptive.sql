-- Adaptive redundancy: per task, the workers' answers weighed by their
-- accuracy (log-likelihood per label, JSON); per answer, what it added.

ALTER TABLE tasks ADD COLUMN w_evidence TEXT NOT NULL DEFAULT '{}';
ALTER TABLE assignments ADD COLUMN evidence TEXT;
