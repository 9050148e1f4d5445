#!/usr/bin/env python3
"""Reference run of evalica's Bradley-Terry on a tutti comparisons CSV.

Usage:
    python pairwise_reference.py comparisons.csv scores_out.csv

Reads `left,right,winner` (winner is `left`, `right` or `tie`; items kept as
strings), maps the winners to evalica.Winner.X / Y / Draw, times only
evalica.bradley_terry(xs, ys, winners) with time.perf_counter, writes
`item,score` (evalica's scores: strengths scaled to a geometric mean of 1,
highest first) and prints one JSON line:

    {"tool": "evalica", "method": "bt", "fit_seconds": ..., "peak_rss_mb": ...}

evalica 0.4.2's default solver ("pyo3", Rust) builds dense n x n win, tie and
weighted matrices (3 x 8 n^2 bytes), so memory grows with the square of the
number of items. peak_rss_mb is the process peak (ru_maxrss / 1024).
"""

import argparse
import json
import resource
import sys
import time

import numpy as np
import pandas as pd


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comparisons", help="CSV with header left,right,winner")
    parser.add_argument("scores_out", help="where to write item,score")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="bradley_terry tolerance (default: evalica's 1e-6)")
    parser.add_argument("--limit", type=int, default=None,
                        help="bradley_terry iteration limit (default: evalica's 100)")
    args = parser.parse_args()

    import evalica

    df = pd.read_csv(args.comparisons, dtype=str, keep_default_na=False)
    missing = {"left", "right", "winner"} - set(df.columns)
    if missing:
        print(f"{args.comparisons}: missing columns {sorted(missing)}", file=sys.stderr)
        return 2
    codes = {
        "left": evalica.Winner.X,
        "right": evalica.Winner.Y,
        "tie": evalica.Winner.Draw,
    }
    winner_col = df["winner"].str.strip().str.lower()
    unknown = sorted(set(winner_col.unique()) - set(codes))
    if unknown:
        print(f"{args.comparisons}: unknown winner values {unknown[:5]}", file=sys.stderr)
        return 2
    # evalica.Winner is an IntEnum; its Rust solver reads the winners as a
    # uint8 array, so hand it one (a list of Winner members gives the same
    # result, just converted inside the timed call).
    winners = winner_col.map({k: int(v) for k, v in codes.items()}).to_numpy(np.uint8)
    xs = df["left"].to_numpy(dtype=object)
    ys = df["right"].to_numpy(dtype=object)

    kwargs = {}
    if args.tolerance is not None:
        kwargs["tolerance"] = args.tolerance
    if args.limit is not None:
        kwargs["limit"] = args.limit

    rss_before = peak_rss_mb()
    start = time.perf_counter()
    result = evalica.bradley_terry(xs, ys, winners, **kwargs)
    fit_seconds = time.perf_counter() - start
    peak = peak_rss_mb()

    scores = result.scores
    pd.DataFrame({"item": scores.index, "score": scores.to_numpy()}).to_csv(
        args.scores_out, index=False
    )

    record = {
        "tool": "evalica",
        "version": getattr(evalica, "__version__", None),
        "method": "bt",
        "fit_seconds": round(fit_seconds, 6),
        "peak_rss_mb": round(peak, 1),
        "rss_before_fit_mb": round(rss_before, 1),
        "comparisons": int(len(df)),
        "items": int(len(scores)),
        "solver": result.solver,
        "tolerance": result.tolerance,
        "limit": result.limit,
        "iterations": int(result.iterations),
    }
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
