#!/usr/bin/env python3
"""Print a markdown table comparing tutti's aggregation runs with the references.

Usage:
    python compare_results.py \
        [--mv OURS_JSON REF_JSON OURS_LABELS REF_LABELS] \
        [--ds OURS_JSON REF_JSON OURS_LABELS REF_LABELS] \
        [--bt OURS_JSON REF_JSON OURS_SCORES REF_SCORES]

OURS_JSON / REF_JSON are files holding the stdout of a run; the last line that
parses as a JSON object with a "fit_seconds" key is used, so other output
around it does no harm. Label files have header `question,label[,...]`, score
files `item,score[,...]`; extra columns are ignored and ids and labels are
compared as strings.

For mv and ds the last column is the label agreement: the share of questions
(in the union of both files) whose labels are equal; a question present in
only one file counts as a disagreement. For bt it is the Spearman rank
correlation of the two score columns over the items in both files.

A missing or unreadable file prints as "-" instead of failing, so a partial
run still gives a table.
"""

import argparse
import json
import math
import os
import sys

import pandas as pd

NAMES = {
    "mv": "mv (Crowd-Kit MajorityVote)",
    "ds": "ds (Crowd-Kit DawidSkene)",
    "bt": "bt (evalica bradley_terry)",
}


def read_record(path):
    """The last JSON object with fit_seconds in a run's output, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "fit_seconds" in record:
            return record
    return None


def read_table(path, key, value):
    if not path or not os.path.exists(path):
        return None
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
    if key not in df.columns or value not in df.columns:
        print(f"note: {path} lacks a {key} or {value} column", file=sys.stderr)
        return None
    df = df[[key, value]].drop_duplicates(subset=key, keep="last")
    return df.set_index(key)[value]


def number(record, key):
    if record is None:
        return None
    v = record.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(v, digits=3):
    return "-" if v is None else f"{v:,.{digits}f}"


def label_agreement(ours_path, ref_path):
    ours = read_table(ours_path, "question", "label")
    ref = read_table(ref_path, "question", "label")
    if ours is None or ref is None:
        return "-", []
    joined = pd.concat([ours.rename("ours"), ref.rename("ref")], axis=1, join="outer")
    total = len(joined)
    if total == 0:
        return "-", ["no questions in either file"]
    equal = int((joined["ours"] == joined["ref"]).sum())
    notes = []
    only_ours = int(joined["ref"].isna().sum())
    only_ref = int(joined["ours"].isna().sum())
    if only_ours or only_ref:
        notes.append(f"{only_ours} questions only in ours, {only_ref} only in the reference")
    notes.append(f"{total - equal:,} of {total:,} questions labelled differently")
    return f"{100.0 * equal / total:.2f} %", notes


def score_correlation(ours_path, ref_path):
    from scipy.stats import spearmanr

    ours = read_table(ours_path, "item", "score")
    ref = read_table(ref_path, "item", "score")
    if ours is None or ref is None:
        return "-", []
    joined = pd.concat([ours.rename("ours"), ref.rename("ref")], axis=1, join="inner")
    joined = joined.apply(pd.to_numeric, errors="coerce").dropna()
    notes = []
    if len(ours) != len(ref) or len(joined) != len(ours):
        notes.append(
            f"{len(joined):,} items in both files ({len(ours):,} in ours, {len(ref):,} in the reference)"
        )
    if len(joined) < 2:
        return "-", notes + ["fewer than 2 items in common"]
    for col, who in (("ref", "reference"), ("ours", "tutti")):
        if joined[col].nunique() == 1:
            notes.append(
                f"{who} scores are all equal ({joined[col].iloc[0]:g}): degenerate fit"
                + (" (evalica 0.4.2 gives this when an item has no win)" if col == "ref" else "")
            )
            return "n/a", notes
    rho = spearmanr(joined["ours"], joined["ref"]).statistic
    return f"ρ = {rho:.4f}", notes


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    for method in ("mv", "ds", "bt"):
        parser.add_argument(
            f"--{method}",
            nargs=4,
            metavar=("OURS_JSON", "REF_JSON", "OURS_OUT", "REF_OUT"),
        )
    args = parser.parse_args()

    rows = []
    notes = []
    for method in ("mv", "ds", "bt"):
        files = getattr(args, method)
        if not files:
            continue
        ours_json, ref_json, ours_out, ref_out = files
        ours, ref = read_record(ours_json), read_record(ref_json)
        t_ours, t_ref = number(ours, "fit_seconds"), number(ref, "fit_seconds")
        if t_ours and t_ref is not None:
            ratio = t_ref / t_ours
            speedup = f"{ratio:,.1f}×" if ratio >= 10 else f"{ratio:.2f}×"
        else:
            speedup = "-"
        if method == "bt":
            quality, extra = score_correlation(ours_out, ref_out)
        else:
            quality, extra = label_agreement(ours_out, ref_out)
        rows.append(
            [
                NAMES[method],
                fmt(t_ours),
                fmt(t_ref),
                speedup,
                fmt(number(ours, "peak_rss_mb"), 1),
                fmt(number(ref, "peak_rss_mb"), 1),
                quality,
            ]
        )
        for who, record in (("tutti", ours), ("reference", ref)):
            if record is None:
                extra.append(f"no JSON result line from {who}")
            elif "iterations" in record:
                extra.append(f"{who}: {record['iterations']} iterations")
        for n in extra:
            notes.append(f"- {method}: {n}")

    header = [
        "method",
        "tutti fit s",
        "reference fit s",
        "speed-up",
        "tutti peak RSS MB",
        "reference peak RSS MB",
        "agreement",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join([" --- "] * len(header)) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if notes:
        print()
        print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
