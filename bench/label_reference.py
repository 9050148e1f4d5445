#!/usr/bin/env python3
"""The labeling a user would write by hand: stream a SQLite table through
pyahocorasick and write one (id, label) pair per labeled row.

Same rules as `tutti label` with its defaults, so the two outputs can be
compared pair for pair:
- text is folded: full-width ASCII forms and the ideographic space become
  ASCII, then lower case;
- keywords match anywhere (no whole-word check), leftmost-longest and
  non-overlapping (pyahocorasick's iter_long);
- a row's labels are the distinct labels of its matches.

usage: label_reference.py POSTS.sqlite PATTERNS.csv COLUMN OUT.csv
"""
import csv
import sqlite3
import sys
import time

import ahocorasick

FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
FOLD[0x3000] = 0x20


def main():
    db, patterns, column, out = sys.argv[1:5]
    automaton = ahocorasick.Automaton()
    with open(patterns, newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            key = row["pattern"].strip().translate(FOLD).lower()
            automaton.add_word(key, row["label"])
    automaton.make_automaton()

    start = time.perf_counter()
    rows = labeled = 0
    con = sqlite3.connect(db)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        for row_id, text in con.execute(f"SELECT id, {column} FROM posts"):
            rows += 1
            if not text:
                continue
            folded = text.lower() if text.isascii() else text.translate(FOLD).lower()
            labels = {label for _, label in automaton.iter_long(folded)}
            if labels:
                labeled += 1
                for label in labels:
                    w.writerow([row_id, label])
    seconds = time.perf_counter() - start
    print(
        f"python-pyahocorasick rows={rows} labeled={labeled} seconds={seconds:.3f} "
        f"rows_per_second={rows / seconds:.0f}"
    )


if __name__ == "__main__":
    main()
