#!/usr/bin/env python3
"""Reference run of Crowd-Kit's categorical aggregation on a tutti answers CSV.

Usage:
    python aggregate_reference.py --method mv|ds answers.csv labels_out.csv

Reads `question,worker,answer` (all columns kept as strings, so labels are
compared exactly as written), renames them to Crowd-Kit's `task,worker,label`,
times only the fit with time.perf_counter, writes `question,label` and prints
one JSON line:

    {"tool": "crowd-kit", "method": "mv", "fit_seconds": ..., "peak_rss_mb": ...}

peak_rss_mb is the whole process's peak (getrusage ru_maxrss, KiB on Linux,
/1024), so it includes the interpreter, pandas, the imports and the loaded
CSV; rss_before_fit_mb says how much of it was there before the fit started.
"""

import argparse
import json
import resource
import sys
import time
import warnings

import pandas as pd


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["mv", "ds"], required=True)
    parser.add_argument("--n-iter", type=int, default=100,
                        help="DawidSkene n_iter (default 100)")
    parser.add_argument("--tol", type=float, default=None,
                        help="DawidSkene tol (default: Crowd-Kit's 1e-5 on the "
                        "change of ELBO per answer; a negative value runs all n_iter)")
    parser.add_argument("answers", help="CSV with header question,worker,answer")
    parser.add_argument("labels_out", help="where to write question,label")
    args = parser.parse_args()

    # Crowd-Kit 1.4.2 uses pandas keywords that pandas 3 deprecates (inplace=,
    # copy=); keep those warnings out of the benchmark's output.
    warnings.filterwarnings("ignore", module=r"crowdkit(\.|$)")

    # Imported here so that --help works without the venv.
    import crowdkit
    from crowdkit.aggregation import DawidSkene, MajorityVote

    df = pd.read_csv(args.answers, dtype=str, keep_default_na=False)
    missing = {"question", "worker", "answer"} - set(df.columns)
    if missing:
        print(f"{args.answers}: missing columns {sorted(missing)}", file=sys.stderr)
        return 2
    df = df.rename(columns={"question": "task", "answer": "label"})[
        ["task", "worker", "label"]
    ]

    if args.method == "mv":
        model = MajorityVote()
    else:
        kwargs = {"n_iter": args.n_iter}
        if args.tol is not None:
            kwargs["tol"] = args.tol
        model = DawidSkene(**kwargs)

    rss_before = peak_rss_mb()
    start = time.perf_counter()
    labels = model.fit_predict(df)
    fit_seconds = time.perf_counter() - start
    peak = peak_rss_mb()

    out = pd.DataFrame({"question": labels.index, "label": labels.to_numpy()})
    out.to_csv(args.labels_out, index=False)

    record = {
        "tool": "crowd-kit",
        "version": getattr(crowdkit, "__version__", None),
        "method": args.method,
        "fit_seconds": round(fit_seconds, 6),
        "peak_rss_mb": round(peak, 1),
        "rss_before_fit_mb": round(rss_before, 1),
        "answers": int(len(df)),
        "questions": int(len(out)),
    }
    if args.method == "ds":
        record["n_iter"] = args.n_iter
        record["tol"] = model.tol
        record["iterations"] = len(getattr(model, "loss_history_", []))
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
