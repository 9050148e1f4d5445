#!/usr/bin/env bash
# Aggregation benchmark: tutti's Rust aggregation against Crowd-Kit 1.4.2
# (MajorityVote, DawidSkene) and evalica (Bradley-Terry), on the same
# generated files, in the same run.
#
#   cargo build --release
#   bash bench/aggregate.sh
#
# Environment (defaults in brackets):
#   ITEMS [100000] PER_ITEM [10] WORKERS [1000] CLASSES [3]   answers to generate
#   PAIR_ITEMS [10000] COMPARISONS [1000000]                  comparisons to generate
#   TUTTI [target/release/tutti]   the binary; a relative path is looked up from
#                                  the current directory, then from the repository root
#   DS_TOL [-1]      passed to Crowd-Kit's DawidSkene as tol (-1, the default, runs all
#                    100 iterations as tutti does; 1e-5 is Crowd-Kit's own default)
#   PYTHON [python3.11, else python3]   interpreter used to make the venv
#   WORK_DIR []      directory for the generated files and results (default: a
#                    fresh temporary directory, removed at the end unless KEEP=1)
#   KEEP [0]         1 keeps the temporary directory
#
# The first run makes bench/.venv and installs crowd-kit==1.4.2, evalica,
# pandas and scipy from PyPI into it (a few minutes); later runs reuse it.
# Every fit time is the fit alone (no CSV reading or writing); peak RSS is the
# whole process's peak. Note that evalica 0.4.2 builds dense n x n matrices:
# PAIR_ITEMS=10000 needs about 2-3 GB.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"

ITEMS="${ITEMS:-100000}"
PER_ITEM="${PER_ITEM:-10}"
WORKERS="${WORKERS:-1000}"
CLASSES="${CLASSES:-3}"
PAIR_ITEMS="${PAIR_ITEMS:-10000}"
COMPARISONS="${COMPARISONS:-1000000}"
TUTTI="${TUTTI:-target/release/tutti}"
DS_TOL="${DS_TOL:--1}"
KEEP="${KEEP:-0}"
SEED=7

VENV="$BENCH_DIR/.venv"
PIP_SPEC=(crowd-kit==1.4.2 evalica pandas scipy)

section() {
    printf '\n=== %s ===\n' "$*"
}

die() {
    printf 'aggregate.sh: %s\n' "$*" >&2
    exit 1
}

# --- the tutti binary, as an absolute path (we cd into the work directory) ---
resolve_tutti() {
    local t="$1"
    if [[ "$t" == */* ]]; then
        if [[ "$t" == /* ]]; then
            printf '%s\n' "$t"
        elif [[ -e "$PWD/$t" ]]; then
            printf '%s\n' "$PWD/$t"
        else
            printf '%s\n' "$REPO_DIR/$t"
        fi
    else
        command -v "$t" || printf '%s\n' "$t"
    fi
}
TUTTI="$(resolve_tutti "$TUTTI")"
[[ -x "$TUTTI" ]] || die "no tutti binary at $TUTTI (run 'cargo build --release' or set TUTTI)"

# --- the Python references' venv ---
section "Python venv ($VENV)"
if [[ -z "${PYTHON:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
# The marker names what was installed, so a changed PIP_SPEC reinstalls and an
# interrupted install is simply run again.
MARKER="$VENV/.installed-$(printf '%s\n' "${PIP_SPEC[@]}" | cksum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating the venv with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
if [[ ! -e "$MARKER" ]]; then
    echo "installing ${PIP_SPEC[*]} (a few minutes the first time)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "${PIP_SPEC[@]}"
    touch "$MARKER"
else
    echo "reusing the installed venv"
fi
PY="$VENV/bin/python"
"$PY" - <<'EOF'
import platform
from importlib.metadata import version
print("python", platform.python_version(), "|",
      " | ".join(f"{p} {version(p)}" for p in ("crowd-kit", "evalica", "pandas", "numpy", "scipy")))
EOF

# --- the work directory ---
if [[ -n "${WORK_DIR:-}" ]]; then
    mkdir -p "$WORK_DIR"
    WORK="$(cd "$WORK_DIR" && pwd)"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/tutti-aggregate-bench.XXXXXX")"
    if [[ "$KEEP" != 1 ]]; then
        trap 'rm -rf "$WORK"' EXIT
    fi
fi
cd "$WORK"
# A rerun in the same WORK_DIR must not pick up an earlier run's results.
rm -f answers.csv comparisons.csv ours_*.csv ours_*.json ref_*.csv ref_*.json results.md

section "Setup"
echo "binary:    $TUTTI"
echo "work dir:  $WORK$([[ -z "${WORK_DIR:-}" && "$KEEP" != 1 ]] && echo ' (removed at exit; KEEP=1 keeps it)')"
echo "machine:   $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
echo "answers:   $ITEMS items x $PER_ITEM answers, $WORKERS workers, $CLASSES classes, seed $SEED"
echo "pairwise:  $PAIR_ITEMS items, $COMPARISONS comparisons, seed $SEED"

section "Generate answers"
"$TUTTI" bench answers --items "$ITEMS" --per-item "$PER_ITEM" --workers "$WORKERS" \
    --classes "$CLASSES" --seed "$SEED" --out answers.csv
echo "answers.csv: $(($(wc -l <answers.csv) - 1)) rows, $(du -h answers.csv | cut -f1)"

ds_args=()
if [[ -n "$DS_TOL" ]]; then ds_args=(--tol "$DS_TOL"); fi

# Ties are arbitrary; both sides break them by the label seen first in the
# file (Crowd-Kit's convention; tutti's default is by name), so labels can
# be compared item by item.
for method in mv ds; do
    section "$method: tutti"
    "$TUTTI" bench aggregate --method "$method" --label-order first-seen answers.csv \
        --out "ours_$method.csv" |
        tee "ours_$method.json"

    section "$method: Crowd-Kit 1.4.2"
    if [[ "$method" == ds ]]; then
        "$PY" "$BENCH_DIR/aggregate_reference.py" --method "$method" "${ds_args[@]}" \
            answers.csv "ref_$method.csv" | tee "ref_$method.json"
    else
        "$PY" "$BENCH_DIR/aggregate_reference.py" --method "$method" \
            answers.csv "ref_$method.csv" | tee "ref_$method.json"
    fi
done

section "Generate comparisons"
"$TUTTI" bench comparisons --items "$PAIR_ITEMS" --comparisons "$COMPARISONS" \
    --seed "$SEED" --out comparisons.csv
echo "comparisons.csv: $(($(wc -l <comparisons.csv) - 1)) rows, $(du -h comparisons.csv | cut -f1)"

section "bt: tutti"
"$TUTTI" bench pairwise comparisons.csv --out ours_bt.csv | tee ours_bt.json

section "bt: evalica"
"$PY" "$BENCH_DIR/pairwise_reference.py" comparisons.csv ref_bt.csv | tee ref_bt.json

section "Results"
"$PY" "$BENCH_DIR/compare_results.py" \
    --mv ours_mv.json ref_mv.json ours_mv.csv ref_mv.csv \
    --ds ours_ds.json ref_ds.json ours_ds.csv ref_ds.csv \
    --bt ours_bt.json ref_bt.json ours_bt.csv ref_bt.csv |
    tee results.md
echo
echo "speed-up = reference fit s / tutti fit s; agreement: share of questions with the same label (mv, ds), Spearman ρ of the scores (bt)"
