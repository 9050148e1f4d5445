#!/usr/bin/env bash
# Bulk labeling benchmark: `tutti label` against the pyahocorasick script a
# user would write (bench/label_reference.py), in the same run, on the same
# generated data, and a check that both give the same (row, label) pairs.
#
# For each column (author_name, then content) and each data variant (plain
# ASCII names, then mixed scripts with CJK, upper case and full width):
#   - the reference streams the posts table and writes its pairs;
#   - `tutti label` reads the table and writes result and production tables
#     to a fresh SQLite file, end to end in one process;
#   - rows per second, peak RSS (from /usr/bin/time), and the comparison.
# Then the matcher alone: MB/s of text per core with the data's patterns.
#
#   cargo build --release
#   bash bench/label.sh
#
# Environment (defaults in brackets):
#   ROWS [2376186]  RUNS [2] (tutti runs per case; the best is reported)
#   VARIANTS ["plain mixed"]  COLUMNS ["author_name content"]
#   TUTTI [target/release/tutti]  PYTHON [python3]
#   MATCHER [1] (0 skips the matcher-alone figure, which builds an example)
#   WORK_DIR []  directory for files (default: a fresh temporary directory,
#                removed at the end unless KEEP=1)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
ROWS="${ROWS:-2376186}"
RUNS="${RUNS:-2}"
VARIANTS="${VARIANTS:-plain mixed}"
COLUMNS="${COLUMNS:-author_name content}"
TUTTI="${TUTTI:-$REPO_DIR/target/release/tutti}"
PYTHON="${PYTHON:-python3}"
[ -x "$TUTTI" ] || { echo "no tutti binary at $TUTTI (cargo build --release)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "sqlite3 is needed (apt-get install sqlite3)" >&2; exit 1; }
"$PYTHON" -c "import ahocorasick" 2>/dev/null || "$PYTHON" -m pip install -q pyahocorasick >&2
if [ -n "${WORK_DIR:-}" ]; then mkdir -p "$WORK_DIR"; W="$WORK_DIR"; else W="$(mktemp -d)"; fi
cleanup() { if [ -z "${WORK_DIR:-}" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; fi; }
trap cleanup EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "rows: $ROWS"
failed=0
for variant in $VARIANTS; do
  flag=""; [ "$variant" = mixed ] && flag="--mixed"
  "$TUTTI" bench posts --rows "$ROWS" --out "$W/posts-$variant.sqlite" --patterns "$W/patterns-$variant.csv" $flag 2>/dev/null
  # The new file's pages go to disk now, not during the timed runs (where
  # the writeback of a quarter of a gigabyte slowed their syncs).
  sync
  for column in $COLUMNS; do
    py_out="$W/py-$variant-$column.csv"
    py_line=$(/usr/bin/time -f "maxrss_kb=%M" -o "$W/py.time" \
      "$PYTHON" "$BENCH_DIR/label_reference.py" "$W/posts-$variant.sqlite" "$W/patterns-$variant.csv" "$column" "$py_out")
    py_rate=$(echo "$py_line" | sed -n 's/.*rows_per_second=\([0-9]*\).*/\1/p')
    py_rss=$(sed -n 's/maxrss_kb=//p' "$W/py.time")
    best=0; best_line=""; best_rss=0
    for run in $(seq "$RUNS"); do
      rm -f "$W/out.sqlite" "$W/out.sqlite-journal"
      line=$(/usr/bin/time -f "maxrss_kb=%M" -o "$W/tutti.time" \
        "$TUTTI" label --patterns "$W/patterns-$variant.csv" --input "$W/posts-$variant.sqlite" --table posts \
        --column "$column" --output "$W/out.sqlite" 2>/dev/null)
      rate=$(echo "$line" | sed -n 's/.*rows_per_second=\([0-9]*\).*/\1/p')
      if [ "$rate" -gt "$best" ]; then best=$rate; best_line=$line; best_rss=$(sed -n 's/maxrss_kb=//p' "$W/tutti.time"); fi
    done
    # The same (row, label) pairs as the reference?
    sqlite3 -csv "$W/out.sqlite" "SELECT id, label FROM posts_$column" | LC_ALL=C sort > "$W/ours.txt"
    tail -n +2 "$py_out" | tr -d '\r' | LC_ALL=C sort > "$W/theirs.txt"
    if cmp -s "$W/ours.txt" "$W/theirs.txt"; then same="same $(wc -l < "$W/ours.txt") pairs"; else same="DIFFERENT pairs"; failed=1; fi
    echo "== $variant $column"
    echo "   python-pyahocorasick: $py_rate rows/s, peak RSS $((py_rss / 1024)) MB"
    echo "   tutti label:          $best rows/s, peak RSS $((best_rss / 1024)) MB  ($(awk -v a="$best" -v b="$py_rate" 'BEGIN {printf "%.1f", a / b}')x)"
    echo "   $best_line"
    echo "   results: $same"
  done
done
if [ "${MATCHER:-1}" = 1 ]; then
  echo "== matcher alone"
  echo "   keywords anywhere (the default):"
  (cd "$REPO_DIR" && WHOLE_WORD=0 cargo run -q --release -p tutti-label --example throughput 2>&1)
  echo "   whole words (--whole-word):"
  (cd "$REPO_DIR" && WHOLE_WORD=1 cargo run -q --release -p tutti-label --example throughput 2>&1)
fi
exit $failed
