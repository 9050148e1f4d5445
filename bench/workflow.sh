#!/usr/bin/env bash
# Workflow engine benchmark, both figures in one run:
#
# 1. Overhead: a 10-step chain of automatic operators (read_table, eight
#    exec_sql, write_table) over ROWS rows, run end to end by `tutti run`
#    (server start, upload through the API, runner, download of the output
#    file), against the same statements run directly by the sqlite3 shell
#    (.import, eight CREATE TABLE ... AS SELECT, .output CSV). Prints both
#    times and the ratio.
# 2. Scheduling: a run of NODES trivial steps (a chain of exec_sql over a
#    one-row table); prints steps per second from the run's own start and
#    finish times.
#
#   cargo build --release
#   bash bench/workflow.sh
#
# Environment (defaults in brackets):
#   ROWS [1000000]  NODES [10000]
#   TUTTI [target/release/tutti]  SQLITE3 [sqlite3]
#   WORK_DIR []  directory for files (default: a fresh temporary directory,
#                removed at the end unless KEEP=1)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
ROWS="${ROWS:-1000000}"
NODES="${NODES:-10000}"
TUTTI="${TUTTI:-$REPO_DIR/target/release/tutti}"
SQLITE3="${SQLITE3:-sqlite3}"
command -v "$SQLITE3" >/dev/null || { echo "sqlite3 is needed (apt-get install sqlite3)" >&2; exit 1; }
[ -x "$TUTTI" ] || { echo "no tutti binary at $TUTTI (cargo build --release)" >&2; exit 1; }
if [ -n "${WORK_DIR:-}" ]; then mkdir -p "$WORK_DIR"; W="$WORK_DIR"; else W="$(mktemp -d)"; fi
cleanup() { if [ -z "${WORK_DIR:-}" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; fi; }
trap cleanup EXIT

now() { date +%s.%N; }

# --- data -------------------------------------------------------------------
python3 - "$W/events.csv" "$ROWS" <<'PY'
import sys, random
path, rows = sys.argv[1], int(sys.argv[2])
r = random.Random(42)
words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
with open(path, "w") as f:
    f.write("user,amount,category,day,note\n")
    for i in range(rows):
        f.write(f"{r.randrange(50000)},{r.randrange(1, 10000)},{words[r.randrange(8)]},{r.randrange(1, 366)},n{i % 1000}\n")
PY

# The eight statements, shared by both sides. In the program each reads the
# table before it by its variable; sqlite3 reads the same names.
Q1="SELECT _id, user, amount, category, day FROM T WHERE amount > 100"
Q2="SELECT _id, user, amount, category, day, amount * 1.2 AS gross FROM A"
Q3="SELECT _id, user, gross, category, day FROM B WHERE day BETWEEN 30 AND 330"
Q4="SELECT _id, user, gross, upper(category) AS category, day FROM C"
Q5="SELECT _id, user, gross, category, day, day / 7 AS week FROM D"
Q6="SELECT _id, user, gross, category, week FROM E WHERE user % 10 <> 3"
Q7="SELECT _id, user, round(gross, 2) AS gross, category, week FROM F ORDER BY _id"
Q8="SELECT category, week, count(*) AS n, sum(gross) AS total FROM G GROUP BY category, week ORDER BY category, week"

mkdir -p "$W/chain"
cp "$W/events.csv" "$W/chain/events.csv"
cat > "$W/chain/chain.cy" <<CY
T = read_table("events.csv");
A = exec_sql(T, query="$Q1");
B = exec_sql(A, query="$Q2");
C = exec_sql(B, query="$Q3");
D = exec_sql(C, query="$Q4");
E = exec_sql(D, query="$Q5");
F = exec_sql(E, query="$Q6");
G = exec_sql(F, query="$Q7");
H = exec_sql(G, query="$Q8");
write_table(H, file="summary.csv");
CY

# sqlite3 directly: the same file, _id added as read_table adds it, the same
# eight statements, the result written as CSV. WAL and synchronous=NORMAL as
# the run's file uses. Columns are declared with the types read_table gives
# these values (whole numbers as integers), so both sides compare alike.
cat > "$W/direct.sql" <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE raw (user INTEGER, amount INTEGER, category TEXT, day INTEGER, note TEXT);
.mode csv
.import --skip 1 $W/events.csv raw
CREATE TABLE T AS SELECT rowid AS _id, * FROM raw;
CREATE TABLE A AS $Q1;
CREATE TABLE B AS $Q2;
CREATE TABLE C AS $Q3;
CREATE TABLE D AS $Q4;
CREATE TABLE E AS $Q5;
CREATE TABLE F AS $Q6;
CREATE TABLE G AS $Q7;
CREATE TABLE H AS $Q8;
.headers on
.output $W/direct-summary.csv
SELECT * FROM H;
SQL

echo "machine: $(nproc) cores, $(uname -sr)"
echo "rows: $ROWS"
t0=$(now); "$SQLITE3" "$W/direct.db" < "$W/direct.sql" > /dev/null; t1=$(now)
direct=$(echo "$t1 - $t0" | bc -l)
rm -rf "$W/out"
t0=$(now); TUTTI_LOG=warn "$TUTTI" run "$W/chain/chain.cy" --out "$W/out" > /dev/null 2> "$W/run.log" || { cat "$W/run.log" >&2; exit 1; }; t1=$(now)
engine=$(echo "$t1 - $t0" | bc -l)
# The same rows, numbers equal to 1e-9 (sqlite3 prints 15 significant
# digits, tutti the shortest text that reads back as the same number).
python3 - "$W/direct-summary.csv" "$W/out/summary.csv" <<'PY' || exit 1
import csv, math, sys
a = list(csv.reader(open(sys.argv[1], newline="")))
b = list(csv.reader(open(sys.argv[2], newline="")))
def same(x, y):
    if x == y:
        return True
    try:
        return math.isclose(float(x), float(y), rel_tol=1e-9)
    except ValueError:
        return False
if len(a) != len(b) or any(len(r) != len(s) or not all(map(same, r, s)) for r, s in zip(a, b)):
    sys.exit(f"outputs differ: {len(a)} and {len(b)} lines")
PY
printf 'chain of 10 steps: sqlite3 %.3f s, tutti run %.3f s, ratio %.2fx (same output)\n' \
    "$direct" "$engine" "$(echo "$engine / $direct" | bc -l)"

# --- scheduling --------------------------------------------------------------
mkdir -p "$W/many"
printf 'x\n1\n' > "$W/many/one.csv"
python3 - "$W/many/many.cy" "$NODES" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write('T0 = read_table("one.csv");\n')
    for i in range(1, n):
        f.write(f'T{i} = exec_sql(T{i-1}, query="SELECT * FROM T{i-1}");\n')
PY
rm -rf "$W/out-many"
TUTTI_LOG=warn "$TUTTI" run "$W/many/many.cy" --out "$W/out-many" > /dev/null 2> "$W/many.log" || { cat "$W/many.log" >&2; exit 1; }
"$SQLITE3" "$W/out-many/tutti.db" "SELECT count(*), (max(finished_at) - min(started_at)) FROM run_nodes" | {
    IFS='|' read -r n ms
    printf 'scheduling: %s steps in %.3f s, %.0f steps per second\n' "$n" "$(echo "$ms / 1000" | bc -l)" "$(echo "$n * 1000 / $ms" | bc -l)"
}
