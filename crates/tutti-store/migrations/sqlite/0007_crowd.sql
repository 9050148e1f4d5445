-- Jobs answered outside Tutti (Mechanical Turk): which crowd answers a job,
-- and per task the HIT the crowd connector posted for it. The token is
-- written before the HIT is asked for, so a connector that stops between
-- asking and recording asks again with the same token and gets the same
-- HIT back instead of paying for a second one.

ALTER TABLE jobs ADD COLUMN crowd TEXT NOT NULL DEFAULT 'in_house';
CREATE INDEX jobs_crowd ON jobs (crowd, id) WHERE crowd <> 'in_house';

CREATE TABLE crowd_hits (
    job_id          INTEGER NOT NULL REFERENCES jobs(id),
    seq             INTEGER NOT NULL,
    token           TEXT    NOT NULL,
    hit_id          TEXT,
    max_assignments INTEGER NOT NULL,
    closed          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX crowd_hits_open ON crowd_hits (job_id) WHERE closed = 0;
