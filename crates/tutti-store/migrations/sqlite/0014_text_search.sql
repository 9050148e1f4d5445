-- Text search over each task's row: its values, one per line, in an FTS5
-- index with the trigram tokenizer (rowid = task id), so a search for any
-- substring of three or more characters reads the index instead of every
-- row. The store indexes committed tasks in the background, in id order,
-- and `through_id` is the last task indexed: a search scans the job's
-- tasks after it directly. Indexing inside the import's own insert would
-- make imports many times slower. Existing tasks are indexed the same way
-- once the store starts.
CREATE VIRTUAL TABLE task_text USING fts5(text, tokenize = 'trigram');

CREATE TABLE task_text_progress (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    through_id INTEGER NOT NULL
);

INSERT INTO task_text_progress (id, through_id) VALUES (1, 0);
