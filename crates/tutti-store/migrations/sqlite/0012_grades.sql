-- A graded pairwise answer's score (negative when the left item is
-- better); the answer column keeps the side it counts for.
ALTER TABLE assignments ADD COLUMN grade INTEGER;
